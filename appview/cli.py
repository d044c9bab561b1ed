"""`skyloft appview serve`: run the appview (DESIGN.md, "Running the services");
`skyloft appview backfill [--did D | --host H]`: index repos from their exports
(appview.backfill)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any

import psycopg

from appview.config import DEFAULT_PORT, AppviewConfig
from appview.db import schema_version
from appview.db.schema import SchemaTooNew
from runtime.command import add_serve_command
from runtime.env import ConfigError


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
    backfill = commands.add_parser(
        "backfill",
        help="index repos from their exports (getRepo): one DID, every repo of a host, or"
        " by default every repo the index marks desynchronized",
    )
    which = backfill.add_mutually_exclusive_group()
    which.add_argument("--did", help="the repo of this DID")
    which.add_argument("--host", help="every repo this PDS lists (listRepos): URL or hostname")
    backfill.add_argument("--data-dir", help="where the appview's data lives (BSKY_DATA_DIRECTORY)")
    backfill.set_defaults(run=_backfill)


def _backfill(args: argparse.Namespace) -> int:
    from appview import backfill

    try:
        config = AppviewConfig.load(os.environ, data_dir=args.data_dir)
    except ConfigError as exc:
        print(f"skyloft appview backfill: {exc}", file=sys.stderr)
        return 2
    if args.did is not None and not args.did.startswith("did:"):
        print(f"skyloft appview backfill: --did must be a DID, got {args.did!r}", file=sys.stderr)
        return 2
    _refuse_newer_schema(config, "backfill")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    return asyncio.run(backfill.run(config, args.did, args.host))


def _create_app(config: AppviewConfig) -> Any:
    from appview.app import create_app

    _refuse_newer_schema(config, "serve")
    return create_app(config)


def _refuse_newer_schema(config: AppviewConfig, command: str) -> None:
    """Stop with one line, before serving, when newer code wrote the database or the
    PostgreSQL server cannot be reached."""
    try:
        schema_version(config)
    except SchemaTooNew as exc:
        print(f"skyloft appview {command}: {exc}", file=sys.stderr)
        sys.exit(2)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split())
        print(f"skyloft appview {command}: BSKY_DB_POSTGRES_URL: {reason}", file=sys.stderr)
        sys.exit(2)
