"""`skyloft relay serve`: run the relay (DESIGN.md, "Running the services")."""

from __future__ import annotations

import argparse
from typing import Any

from relay.config import DEFAULT_PORT, RelayConfig
from runtime.command import add_serve_command


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    relay = subparsers.add_parser("relay", help="the relay: crawls PDSes, serves one firehose")
    commands = relay.add_subparsers(dest="relay_command", required=True)
    add_serve_command(
        commands,
        service="relay",
        help="serve the relay over HTTP",
        default_port=DEFAULT_PORT,
        data_env="RELAY_PERSIST_DIR",
        load=RelayConfig.load,
        create_app=_create_app,
    )


def _create_app(config: RelayConfig) -> Any:
    from relay.app import create_app

    return create_app(config)
