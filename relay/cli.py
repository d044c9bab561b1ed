"""`skyloft relay serve`: run the relay (DESIGN.md, "Running the services")."""

from __future__ import annotations

import argparse
import os
import sys

from relay.config import DEFAULT_PORT, ConfigError, RelayConfig


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    relay = subparsers.add_parser("relay", help="the relay: crawls PDSes, serves one firehose")
    commands = relay.add_subparsers(dest="relay_command", required=True)
    serve = commands.add_parser("serve", help="serve the relay over HTTP")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, help=f"port, 0 for any free one (default {DEFAULT_PORT})"
    )
    serve.add_argument("--data-dir", help="where the database lives (RELAY_PERSIST_DIR)")
    serve.set_defaults(run=_serve)


def _serve(args: argparse.Namespace) -> int:
    try:
        config = RelayConfig.load(
            os.environ, host=args.host, port=args.port, data_dir=args.data_dir
        )
    except ConfigError as exc:
        print(f"skyloft relay serve: {exc}", file=sys.stderr)
        return 2
    from relay.app import create_app
    from skyloft.serve import serve_app

    serve_app(create_app(config), config.host, config.port)
    return 0
