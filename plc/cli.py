"""`skyloft plc serve`: run the did:plc directory (DESIGN.md, "Running the services")."""

from __future__ import annotations

import argparse
from typing import Any

from plc.config import DEFAULT_PORT, PlcConfig
from runtime.command import add_serve_command


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plc = subparsers.add_parser("plc", help="the did:plc identity directory")
    commands = plc.add_subparsers(dest="plc_command", required=True)
    add_serve_command(
        commands,
        service="plc",
        help="serve the directory over HTTP",
        default_port=DEFAULT_PORT,
        data_env="PLC_DATA_DIRECTORY",
        load=PlcConfig.load,
        create_app=_create_app,
    )


def _create_app(config: PlcConfig) -> Any:
    from plc.app import create_app

    return create_app(config)
