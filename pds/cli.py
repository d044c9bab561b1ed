"""`skyloft pds serve | test-email | admin`: run the personal data server (DESIGN.md, "Running
the services"), check its mail set-up, administer it (pds/admin_cli.py)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from pds import admin_cli
from pds.config import DEFAULT_PORT, PdsConfig
from runtime.command import add_serve_command
from runtime.env import ConfigError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pds = subparsers.add_parser("pds", help="the personal data server")
    commands = pds.add_subparsers(dest="pds_command", required=True)
    add_serve_command(
        commands,
        service="pds",
        help="serve the PDS over HTTP",
        default_port=DEFAULT_PORT,
        data_env="PDS_DATA_DIRECTORY",
        load=PdsConfig.load,
        create_app=_create_app,
    )
    test_email = commands.add_parser(
        "test-email", help="send a test mail with the PDS_EMAIL_SMTP_URL settings"
    )
    test_email.add_argument("address", help="where to send it")
    test_email.set_defaults(run=_test_email)
    admin_cli.register(commands)


def _create_app(config: PdsConfig) -> Any:
    from pds.app import create_app

    return create_app(config)


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
