"""`skyloft jetstream serve`: run the Jetstream-compatible stream (DESIGN.md, "Running the
services")."""

from __future__ import annotations

import argparse
import os
from typing import Any

from websockets import http11

from jetstream.config import DEFAULT_PORT, JetstreamConfig
from runtime.command import add_serve_command, serve_service

MAX_REQUEST_LINE = 1 << 20


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    jetstream = subparsers.add_parser(
        "jetstream", help="a Jetstream-compatible JSON stream of a relay's firehose"
    )
    commands = jetstream.add_subparsers(dest="jetstream_command", required=True)
    serve = add_serve_command(
        commands,
        service="jetstream",
        help="serve /subscribe over HTTP",
        default_port=DEFAULT_PORT,
        data_env="JETSTREAM_DATA_DIR",
        load=JetstreamConfig.load,
        create_app=_create_app,
    )
    serve.add_argument(
        "--nats", help="also publish to NATS JetStream at this URL (JETSTREAM_NATS_URL)"
    )
    serve.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    # The websocket handshake parser (the websockets library, under uvicorn) refuses request
    # lines over 8 KiB; 10,000 wantedDids take about 440 KB. Go's servers, the official
    # Jetstream's, accept 1 MB of request line and headers.
    http11.MAX_LINE_LENGTH = MAX_REQUEST_LINE
    # --nats overrides the environment, as --host, --port and --data-dir do.
    env = {**os.environ, **({"JETSTREAM_NATS_URL": args.nats} if args.nats else {})}
    return serve_service("jetstream", args, env, JetstreamConfig.load, _create_app)


def _create_app(config: JetstreamConfig) -> Any:
    from jetstream.app import create_app

    return create_app(config)
