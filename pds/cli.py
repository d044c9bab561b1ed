"""`skyloft pds serve`: run the personal data server (DESIGN.md, "Running the services")."""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import sys

from pds.config import DEFAULT_PORT, ConfigError, PdsConfig


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pds = subparsers.add_parser("pds", help="the personal data server")
    commands = pds.add_subparsers(dest="pds_command", required=True)
    serve = commands.add_parser("serve", help="serve the PDS over HTTP")
    serve.add_argument("--host", help="address to bind (PDS_HOST; default 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, help=f"port, 0 for any free one (PDS_PORT; default {DEFAULT_PORT})"
    )
    serve.add_argument("--data-dir", help="where accounts and repos live (PDS_DATA_DIRECTORY)")
    serve.set_defaults(run=_serve)


def _free_port(host: str) -> int:
    """A port free right now. The public URL (in DID documents) names the port, so it must be
    known before the app is built; the short race with other binders is acceptable in tests."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


def _serve(args: argparse.Namespace) -> int:
    try:
        config = PdsConfig.load(os.environ, host=args.host, port=args.port, data_dir=args.data_dir)
    except ConfigError as exc:
        print(f"skyloft pds serve: {exc}", file=sys.stderr)
        return 2
    if config.port == 0:
        config = dataclasses.replace(config, port=_free_port(config.host))
    from pds.app import create_app
    from skyloft.serve import serve_app

    serve_app(create_app(config), config.host, config.port)
    return 0
