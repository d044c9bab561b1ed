"""Feed-generator fixtures: the jetstream tests' network of real PLC, PDS, relay and jetstream
processes, and their HTTP client."""

from __future__ import annotations

from tests.jetstream import conftest as jetstream_fixtures

plc_url = jetstream_fixtures.plc_url
network = jetstream_fixtures.network
http = jetstream_fixtures.http
