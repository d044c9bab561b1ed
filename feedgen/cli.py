"""`skyloft feedgen serve MODULE | publish MODULE | new NAME` (DESIGN.md, "Running the
services"; bskydocs-starter-custom-feeds.md)."""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from pathlib import Path
from typing import Any

from atcore.identity.did_web import did_web
from feedgen.config import DEFAULT_PORT, FeedgenConfig
from runtime.command import add_serve_command, serve_service

EXAMPLE = Path(__file__).parent / "examples" / "hashtag.py"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    feedgen = subparsers.add_parser("feedgen", help="feed generators written as one module")
    commands = feedgen.add_subparsers(dest="feedgen_command", required=True)
    serve = add_serve_command(
        commands,
        service="feedgen",
        help="serve the feed a module defines (its `feed = Feed(...)`)",
        default_port=DEFAULT_PORT,
        data_env="FEEDGEN_DATA_DIR",
        load=FeedgenConfig.load,
        create_app=lambda config: config,  # replaced below: the app needs the module's feed
    )
    serve.add_argument("module", help="a dotted module name or a path to a .py file")
    serve.set_defaults(run=_serve)

    publish = commands.add_parser(
        "publish", help="write the feed's app.bsky.feed.generator record through your PDS"
    )
    publish.add_argument("module", help="the feed's module, as given to serve")
    publish.add_argument("--pds", default=os.environ.get("FEEDGEN_PDS_URL", "https://bsky.social"))
    publish.add_argument("--handle", default=os.environ.get("FEEDGEN_PUBLISH_HANDLE"))
    publish.add_argument(
        "--service-did",
        default=os.environ.get("FEEDGEN_SERVICE_DID") or _hostname_did(),
        help="the feed generator's DID (default: did:web:$FEEDGEN_HOSTNAME)",
    )
    publish.set_defaults(run=_publish)

    new = commands.add_parser("new", help="write a ready example feed module NAME.py")
    new.add_argument("name", help="the feed's name (its record key), also the file's")
    new.add_argument("--dir", type=Path, default=Path("."))
    new.set_defaults(run=_new)


def _serve(args: argparse.Namespace) -> int:
    from feedgen.app import FeedModuleError, create_app, load_feed

    try:
        feed = load_feed(args.module)
    except FeedModuleError as exc:
        print(f"skyloft feedgen serve: {exc}", file=sys.stderr)
        return 2

    def app(config: FeedgenConfig) -> Any:
        return create_app(config, feed)

    return serve_service("feedgen", args, os.environ, FeedgenConfig.load, app)


def _publish(args: argparse.Namespace) -> int:
    from feedgen.app import FeedModuleError, load_feed
    from feedgen.publish import Owner, PublishError, publish

    if not args.service_did:
        print("skyloft feedgen publish: give --service-did or FEEDGEN_HOSTNAME", file=sys.stderr)
        return 2
    try:
        feed = load_feed(args.module)
        handle = args.handle or input("handle: ")
        password = os.environ.get("FEEDGEN_PUBLISH_PASSWORD") or getpass.getpass("password: ")
        uri = publish(Owner(args.pds, handle, password), feed, args.service_did)
    except (FeedModuleError, PublishError, OSError) as exc:
        print(f"skyloft feedgen publish: {exc}", file=sys.stderr)
        return 1
    print(uri)
    return 0


def _new(args: argparse.Namespace) -> int:
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,63}", args.name):
        print(
            "skyloft feedgen new: NAME must be lower-case letters, digits, - or _", file=sys.stderr
        )
        return 2
    path = args.dir / f"{args.name.replace('-', '_')}.py"
    if path.exists():
        print(f"skyloft feedgen new: {path} exists", file=sys.stderr)
        return 1
    source = EXAMPLE.read_text().replace('Feed(\n    "hashtag"', f'Feed(\n    "{args.name}"')
    path.write_text(source)
    print(f"wrote {path}; run it with: skyloft feedgen serve {path}")
    return 0


def _hostname_did() -> str | None:
    hostname = os.environ.get("FEEDGEN_HOSTNAME")
    return did_web(hostname) if hostname else None
