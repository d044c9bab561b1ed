"""`skyloft plc serve`: run the did:plc directory (DESIGN.md, "Running the services")."""

from __future__ import annotations

import argparse
import os
import sys

from plc.config import DEFAULT_PORT, ConfigError, PlcConfig


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plc = subparsers.add_parser("plc", help="the did:plc identity directory")
    commands = plc.add_subparsers(dest="plc_command", required=True)
    serve = commands.add_parser("serve", help="serve the directory over HTTP")
    serve.add_argument("--host", help="address to bind (PLC_HOST; default 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, help=f"port, 0 for any free one (PLC_PORT; default {DEFAULT_PORT})"
    )
    serve.add_argument("--data-dir", help="where the database lives (PLC_DATA_DIRECTORY)")
    serve.set_defaults(run=_serve)


def _serve(args: argparse.Namespace) -> int:
    try:
        config = PlcConfig.load(os.environ, host=args.host, port=args.port, data_dir=args.data_dir)
    except ConfigError as exc:
        print(f"skyloft plc serve: {exc}", file=sys.stderr)
        return 2
    from plc.app import create_app
    from skyloft.serve import serve_app

    serve_app(create_app(config), config.host, config.port)
    return 0
