"""`skyloft <command> ...`: dispatch to each service's or tool's own CLI module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _commands() -> list[Register]:
    from appview import cli as appview_cli
    from feedgen import cli as feedgen_cli
    from jetstream import cli as jetstream_cli
    from pds import cli as pds_cli
    from plc import cli as plc_cli
    from relay import cli as relay_cli
    from skyloft import devnet, repo_cli
    from skyloft.account import cli as account_cli

    return [
        repo_cli.register,
        plc_cli.register,
        pds_cli.register,
        relay_cli.register,
        appview_cli.register,
        jetstream_cli.register,
        feedgen_cli.register,
        devnet.register,
        account_cli.register,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skyloft", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for register in _commands():
        register(sub)
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
