"""`skyloft pds serve | test-email | admin`: run the personal data server (DESIGN.md, "Running
the services"), check its mail set-up, administer it (pds/admin_cli.py)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import sys

from pds import admin_cli
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
    test_email = commands.add_parser(
        "test-email", help="send a test mail with the PDS_EMAIL_SMTP_URL settings"
    )
    test_email.add_argument("address", help="where to send it")
    test_email.set_defaults(run=_test_email)
    admin_cli.register(commands)


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


def _test_email(args: argparse.Namespace) -> int:
    """Send one mail exactly as the server would, reporting the SMTP server's refusal if any."""
    import asyncio

    from pds.mailer import LogMailer, MailError, mailer_for, test_mail

    env = {"PDS_DATA_DIRECTORY": ".", **os.environ}
    try:
        config = PdsConfig.load(env)
    except ConfigError as exc:
        print(f"skyloft pds test-email: {exc}", file=sys.stderr)
        return 2
    mailer = mailer_for(config)
    if isinstance(mailer, LogMailer):
        print("skyloft pds test-email: PDS_EMAIL_SMTP_URL is not set", file=sys.stderr)
        return 2
    mail = test_mail(config.hostname)
    try:
        asyncio.run(mailer.send(args.address, mail.subject, mail.text))
    except MailError as exc:
        print(f"skyloft pds test-email: {exc}", file=sys.stderr)
        return 1
    print(f"sent a test mail to {args.address}")
    return 0
