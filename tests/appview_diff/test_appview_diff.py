"""The differential test's replay: the scripted session of tests/appview_diff/session.py written
through our PDS on a real network (PLC, PDS, relay, appview processes), every read asked of our
appview and compared with the official appview's recorded answers to the same session
(recorded/reference.json, made by `python -m tests.appview_diff.compare --record`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from skyloft.services import ServiceProcess
from tests.appview_diff.compare import RECORDED, differences
from tests.appview_diff.session import read_all, run_session, wait_indexed, without_missing

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REFERENCE: dict[str, Any] = json.loads(RECORDED.read_text())


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("appview-diff")
    processes: list[ServiceProcess] = []

    def start(kind: str, env: dict[str, str]) -> ServiceProcess:
        processes.append(ServiceProcess(kind, root / kind, env=env))
        return processes[-1]

    try:
        plc = start("plc", {})
        relay = start("relay", {"RELAY_DEV_MODE": "true", "RELAY_PLC_HOST": plc.url})
        env = {
            "BSKY_REPO_PROVIDER": relay.url,
            "BSKY_DID_PLC_URL": plc.url,
            "BSKY_DEV_MODE": "true",
        }
        appview = start("appview", env)
        did = httpx.get(f"{appview.url}/.well-known/did.json").json()["id"]
        pds_env = {
            "PDS_DEV_MODE": "true",
            "PDS_DID_PLC_URL": plc.url,
            "PDS_CRAWLERS": relay.url,
            "PDS_BSKY_APP_VIEW_URL": appview.url,
            "PDS_BSKY_APP_VIEW_DID": did,
        }
        pds = start("pds", pds_env)
        session = run_session(pds.url)
        wait_indexed(session, appview.url)
        yield read_all(session, appview.url, did)
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            process.stop()


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_read_answers_as_the_reference(ours: dict[str, Any], name: str) -> None:
    found = differences({name: ours[name]}, {name: without_missing(REFERENCE[name])})
    assert not found, found[0]
