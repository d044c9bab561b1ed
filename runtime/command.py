"""The `skyloft <service> serve` command all services share (DESIGN.md, "Running the services"):
the same three flags over the environment, a one-line message for a bad setting, and the
listening socket bound before the app is built so the config carries the real port."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from runtime.env import ConfigError
from runtime.serve import ASGIApp, listen, serve_app


def add_serve_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    service: str,
    help: str,
    default_port: int,
    data_env: str,
    load: Callable[..., Any],
    create_app: Callable[[Any], ASGIApp],
) -> argparse.ArgumentParser:
    """Add `serve` to a service's sub-commands; `load(env, host=, port=, data_dir=)` reads the
    config (raising ConfigError with a one-line message) and `create_app(config)` builds it; it
    is served by the server runtime.serve picks (SKYLOFT_ASGI_SERVER)."""
    serve = commands.add_parser("serve", help=help)
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, help=f"port, 0 for any free one (default {default_port})"
    )
    serve.add_argument("--data-dir", help=f"where its data lives ({data_env})")

    def run(args: argparse.Namespace) -> int:
        return serve_service(service, args, os.environ, load, create_app)

    serve.set_defaults(run=run)
    return serve


def serve_service(
    service: str,
    args: argparse.Namespace,
    env: Mapping[str, str],
    load: Callable[..., Any],
    create_app: Callable[[Any], ASGIApp],
) -> int:
    try:
        config = load(env, host=args.host, port=args.port, data_dir=args.data_dir)
    except ConfigError as exc:
        print(f"skyloft {service} serve: {exc}", file=sys.stderr)
        return 2
    sock = listen(config.host, config.port)
    config = dataclasses.replace(config, port=sock.getsockname()[1])
    serve_app(create_app(config), sock)
    return 0
