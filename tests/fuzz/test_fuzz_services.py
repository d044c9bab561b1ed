"""Every endpoint of every service, fuzzed with hostile requests (issue 14: every 500 is a bug).

Each endpoint gets SKYLOFT_FUZZ_EXAMPLES generated requests (a few in CI; set it high for a
soak run); the test reports every endpoint that failed, each with its shrunk example.
"""

from __future__ import annotations

import pytest

from tests.fuzz.harness import Target, endpoints, fuzz

# A real PLC process serves the PDS and relay; the relay crawls a fake PDS on a local port.
pytestmark = [pytest.mark.slow, pytest.mark.integration]


def fuzz_all(target: Target) -> None:
    failures = []
    for endpoint in endpoints(target.app):
        failure = fuzz(target, endpoint)
        if failure is not None:
            failures.append(failure)
    assert not failures, "\n\n".join(failures)


def test_plc(plc: Target) -> None:
    fuzz_all(plc)


def test_pds(pds: Target) -> None:
    fuzz_all(pds)


def test_relay(relay: Target) -> None:
    fuzz_all(relay)


def test_appview(appview: Target) -> None:
    fuzz_all(appview)


def test_jetstream(jetstream: Target) -> None:
    fuzz_all(jetstream)


def test_feedgen(feedgen: Target) -> None:
    fuzz_all(feedgen)
