"""Feed generator configuration, read once from the starter kit's FEEDGEN_* variables and flags.

Names follow the official starter kit (bskydocs-starter-custom-feeds.md, its `.env.example`):
FEEDGEN_HOSTNAME (where the service is reached; its DID is `did:web:<hostname>`),
FEEDGEN_SERVICE_DID (a DID other than that), FEEDGEN_PUBLISHER_DID (the account whose
repository holds the `app.bsky.feed.generator` record), FEEDGEN_SUBSCRIPTION_ENDPOINT (the
relay, `wss://bsky.network`). Ours: FEEDGEN_JETSTREAM_URL (read a Jetstream instead of the
relay), FEEDGEN_NATS_URL with FEEDGEN_NATS_STREAM and FEEDGEN_NATS_SUBJECT (read what
`skyloft jetstream serve --nats` publishes; defaults ATPROTO and atproto), FEEDGEN_TRUST_RELAY
(skip commit signatures and MST proofs: the relay checked them), FEEDGEN_DATABASE_URL (a
`postgresql://` URL: store there instead of SQLite), FEEDGEN_PLC_URL, FEEDGEN_DEV_MODE
(loopback PLC and did:web hosts, plain http), FEEDGEN_DATA_DIR (`--data-dir` overrides it).
Without FEEDGEN_HOSTNAME the service names itself after the port it listens on
(`did:web:localhost%3A<port>`), which only dev mode accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from atcore.errors import InvalidSyntax
from atcore.identity.did_web import did_web
from atcore.syntax.did import parse_did
from runtime.env import ConfigError, env_bool

DEFAULT_PORT: Final = 3000
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_DATA_DIR: Final = "data/feedgen"
DEFAULT_PLC_URL: Final = "https://plc.directory"
DEFAULT_RELAY: Final = "wss://bsky.network"
# What `skyloft jetstream serve --nats` publishes to unless told otherwise.
DEFAULT_NATS_STREAM: Final = "ATPROTO"
DEFAULT_NATS_SUBJECT: Final = "atproto"


@dataclass(frozen=True)
class FeedgenConfig:
    data_dir: Path
    publisher_did: str
    hostname: str | None = None
    service_did_setting: str | None = None
    relay_url: str = DEFAULT_RELAY
    jetstream_url: str | None = None
    nats_url: str | None = None
    nats_stream: str = DEFAULT_NATS_STREAM
    nats_subject: str = DEFAULT_NATS_SUBJECT
    trust_relay: bool = False
    database_url: str | None = None
    plc_url: str = DEFAULT_PLC_URL
    dev_mode: bool = False
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT

    @property
    def db_path(self) -> Path:
        return self.data_dir / "feedgen.sqlite"

    @property
    def public_host(self) -> str:
        if self.hostname:
            return self.hostname
        # did:web names carry a port only for localhost (spec-did.md), so loopback is that.
        loopback = self.host in ("127.0.0.1", "::1", "localhost")
        return f"{'localhost' if loopback else self.host}:{self.port}"

    @property
    def service_did(self) -> str:
        if self.service_did_setting:
            return self.service_did_setting
        return did_web(self.public_host)

    @property
    def service_url(self) -> str:
        scheme = "https" if self.hostname and not self.dev_mode else "http"
        return f"{scheme}://{self.public_host}"

    def feed_uri(self, name: str) -> str:
        return f"at://{self.publisher_did}/app.bsky.feed.generator/{name}"

    @classmethod
    def load(
        cls,
        env: Mapping[str, str],
        *,
        host: str | None = None,
        port: int | None = None,
        data_dir: str | None = None,
    ) -> FeedgenConfig:
        config = cls(
            data_dir=Path(data_dir or env.get("FEEDGEN_DATA_DIR") or DEFAULT_DATA_DIR),
            publisher_did=env.get("FEEDGEN_PUBLISHER_DID", ""),
            hostname=env.get("FEEDGEN_HOSTNAME") or None,
            service_did_setting=env.get("FEEDGEN_SERVICE_DID") or None,
            relay_url=_ws(env.get("FEEDGEN_SUBSCRIPTION_ENDPOINT") or DEFAULT_RELAY),
            jetstream_url=_ws(env["FEEDGEN_JETSTREAM_URL"])
            if env.get("FEEDGEN_JETSTREAM_URL")
            else None,
            nats_url=env.get("FEEDGEN_NATS_URL") or None,
            nats_stream=env.get("FEEDGEN_NATS_STREAM") or DEFAULT_NATS_STREAM,
            nats_subject=env.get("FEEDGEN_NATS_SUBJECT") or DEFAULT_NATS_SUBJECT,
            trust_relay=env_bool(env, "FEEDGEN_TRUST_RELAY"),
            database_url=env.get("FEEDGEN_DATABASE_URL") or None,
            plc_url=(env.get("FEEDGEN_PLC_URL") or DEFAULT_PLC_URL).rstrip("/"),
            dev_mode=env_bool(env, "FEEDGEN_DEV_MODE"),
            host=host or DEFAULT_HOST,
            port=port if port is not None else DEFAULT_PORT,
        )
        config.validate()
        return config

    def validate(self) -> None:
        try:
            parse_did(self.publisher_did)
        except InvalidSyntax:
            raise ConfigError(
                f"FEEDGEN_PUBLISHER_DID must be the DID of the feed's owner, "
                f"got {self.publisher_did!r}"
            ) from None
        if self.service_did_setting is not None:
            try:
                parse_did(self.service_did_setting)
            except InvalidSyntax:
                raise ConfigError("FEEDGEN_SERVICE_DID must be a DID") from None
        if self.hostname is None and not self.dev_mode:
            raise ConfigError("FEEDGEN_HOSTNAME is required (or FEEDGEN_DEV_MODE=true)")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0-65535, got {self.port}")
        if self.database_url is not None and not self.database_url.startswith(
            ("postgres://", "postgresql://")
        ):
            raise ConfigError("FEEDGEN_DATABASE_URL must be a postgresql:// URL")
        if self.nats_url is not None:
            if not self.nats_url.startswith(("nats://", "tls://")):
                raise ConfigError(f"FEEDGEN_NATS_URL must be a nats:// URL, got {self.nats_url!r}")
            if self.jetstream_url is not None:
                raise ConfigError("FEEDGEN_NATS_URL and FEEDGEN_JETSTREAM_URL: choose one")
        if not self.plc_url.startswith(("http://", "https://")):
            raise ConfigError(f"FEEDGEN_PLC_URL must be an http(s) URL, got {self.plc_url!r}")
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise ConfigError(f"data directory {self.data_dir} exists and is not a directory")


def _ws(url: str) -> str:
    """A websocket URL: http(s) is accepted for ws(s), as the starter kit's users write both."""
    for http, ws in (("https://", "wss://"), ("http://", "ws://")):
        if url.startswith(http):
            return ws + url[len(http) :]
    if not url.startswith(("ws://", "wss://")):
        raise ConfigError(f"subscription URLs must be ws(s):// or http(s)://, got {url!r}")
    return url
