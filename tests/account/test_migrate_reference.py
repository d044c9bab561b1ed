"""`skyloft account migrate` both ways between our PDS and the reference one (npm
`@atproto/pds`, installed into bench/js as for bench/pds.py), on our PLC directory: the same
account, kill in the blob copy and resume as against our own PDS."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from tests.account.conftest import Client
from tests.account.scenario import (
    Codes,
    InboxCodes,
    LogCodes,
    check_moved,
    fill,
    kill_during_blobs,
    migrate_command,
    resume,
)
from tests.pds.conftest import pds_env
from tests.pds.smtp_server import Inbox, smtp_server
from tests.servers import running_service

pytestmark = [pytest.mark.integration, pytest.mark.slow]
JS_DIR = Path(__file__).resolve().parents[2] / "bench" / "js"


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with smtp_server() as running:
        yield running


@pytest.fixture
def reference_pds(plc_url: str, inbox: Inbox) -> Iterator[str]:
    """The reference PDS on our PLC directory, mailing through the tests' SMTP server."""
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed")
    if not (JS_DIR / "node_modules" / "@atproto" / "dev-env").is_dir():
        pytest.skip("the reference PDS is not installed: run `npm ci --prefix bench/js`")
    with subprocess.Popen(
        ["node", "reference_pds_standalone.mjs", plc_url, inbox.url],
        cwd=JS_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        line = process.stdout.readline()
        try:
            assert line, "the reference PDS did not start"
            yield str(json.loads(line)["url"])
        finally:
            process.stdin.close()  # it shuts down when stdin closes
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def our_pds(tmp_path: Path, plc_url: str) -> Iterator[str]:
    with running_service("pds", tmp_path / "ours", env=pds_env(plc_url)) as url:
        yield url


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


@pytest.mark.parametrize("direction", ["reference-to-ours", "ours-to-reference"])
async def test_migrate_with_the_reference_pds(
    direction: str,
    tmp_path: Path,
    plc_url: str,
    reference_pds: str,
    our_pds: str,
    inbox: Inbox,
    stack: AsyncExitStack,
) -> None:
    ours = Client(await stack.enter_async_context(httpx.AsyncClient(base_url=our_pds)))
    theirs = Client(await stack.enter_async_context(httpx.AsyncClient(base_url=reference_pds)))
    codes: Codes
    if direction == "reference-to-ours":
        old, new, codes = theirs, ours, InboxCodes(inbox)
    else:
        old, new, codes = ours, theirs, LogCodes(tmp_path / "pds-ours.log")
    alice = await old.signup("alice.test")
    friends = [await old.signup("bob.test"), await new.signup("carol.test")]
    records = await fill(alice, friends)
    state = tmp_path / "migration.json"
    command = migrate_command(alice.did, str(new.http.base_url), plc_url, state)
    moving = await kill_during_blobs(command, state, new, alice.did)
    resume(command, codes)
    await check_moved(plc_url, alice, moving, friends, records)
