"""Feed-generator fixtures: the jetstream tests' network of real PLC, PDS, relay and jetstream
processes, their HTTP client, and a PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.feedgen.postgres import running_postgres
from tests.jetstream import conftest as jetstream_fixtures

plc_url = jetstream_fixtures.plc_url
network = jetstream_fixtures.network
http = jetstream_fixtures.http


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    with running_postgres() as url:
        yield url
