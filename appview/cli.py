"""`skyloft appview serve`: run the appview (DESIGN.md, "Running the services")."""

from __future__ import annotations

import argparse
from typing import Any

from appview.config import DEFAULT_PORT, AppviewConfig, ConfigError
from skyloft.service_cli import add_serve_command


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    appview = subparsers.add_parser("appview", help="the appview: indexes app.bsky, serves views")
    commands = appview.add_subparsers(dest="appview_command", required=True)
    add_serve_command(
        commands,
        service="appview",
        help="index the relay's firehose and serve the app.bsky read API",
        default_port=DEFAULT_PORT,
        data_env="BSKY_DATA_DIRECTORY",
        load=AppviewConfig.load,
        config_error=ConfigError,
        create_app=_create_app,
    )


def _create_app(config: AppviewConfig) -> Any:
    from appview.app import create_app

    return create_app(config)
