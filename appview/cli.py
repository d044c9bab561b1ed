"""`skyloft appview serve`: run the appview (DESIGN.md, "Running the services")."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import psycopg

from appview.config import DEFAULT_PORT, AppviewConfig
from appview.db import schema_version
from appview.db.schema import SchemaTooNew
from runtime.command import add_serve_command


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
        create_app=_create_app,
    )


def _create_app(config: AppviewConfig) -> Any:
    from appview.app import create_app

    _refuse_newer_schema(config)
    return create_app(config)


def _refuse_newer_schema(config: AppviewConfig) -> None:
    """Stop with one line, before serving, when newer code wrote the database or the
    PostgreSQL server cannot be reached."""
    try:
        schema_version(config)
    except SchemaTooNew as exc:
        print(f"skyloft appview serve: {exc}", file=sys.stderr)
        sys.exit(2)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split())
        print(f"skyloft appview serve: BSKY_DB_POSTGRES_URL: {reason}", file=sys.stderr)
        sys.exit(2)
