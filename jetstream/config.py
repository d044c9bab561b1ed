"""Jetstream configuration, read once from the official Jetstream's JETSTREAM_* variables and flags.

Names follow the official Jetstream (bluesky-social/jetstream, its `serve` flags):
JETSTREAM_WS_URL (the relay's `com.atproto.sync.subscribeRepos` URL), JETSTREAM_DATA_DIR (our
data directory, `--data-dir` overrides it), JETSTREAM_EVENT_TTL (a Go duration such as `24h`:
how long the event log keeps an event), JETSTREAM_OVERRIDE_RELAY_CURSOR (start the upstream at
this seq instead of the persisted one; 0 means live), JETSTREAM_PLC_URL. Ours:
JETSTREAM_MAX_LOG_BYTES (the event log's size bound on disk), JETSTREAM_MEMORY_BYTES (the recent
part of the log kept in memory for live subscribers), JETSTREAM_TRUST_RELAY (skip what the relay
checked: commit signatures, MST proofs, the CAR's hashes and commit block),
JETSTREAM_DEV_MODE (loopback PLC/PDS), and for publishing to NATS JetStream
JETSTREAM_NATS_URL (`--nats`), JETSTREAM_NATS_STREAM and JETSTREAM_NATS_SUBJECT (the
subjects' first token).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from runtime.env import ConfigError, env_bool, env_duration, env_int

DEFAULT_PORT: Final = 6008
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_DATA_DIR: Final = "data/jetstream"
DEFAULT_WS_URL: Final = "wss://bsky.network/xrpc/com.atproto.sync.subscribeRepos"
DEFAULT_PLC_URL: Final = "https://plc.directory"
DEFAULT_EVENT_TTL: Final = 24 * 3600.0
DEFAULT_MAX_LOG_BYTES: Final = 8 * 1024**3
DEFAULT_MEMORY_BYTES: Final = 256 * 1024**2
DEFAULT_NATS_STREAM: Final = "ATPROTO"
DEFAULT_NATS_SUBJECT: Final = "atproto"
_NATS_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class JetstreamConfig:
    data_dir: Path
    ws_url: str = DEFAULT_WS_URL
    plc_url: str = DEFAULT_PLC_URL
    event_ttl: float = DEFAULT_EVENT_TTL
    max_log_bytes: int = DEFAULT_MAX_LOG_BYTES
    memory_bytes: int = DEFAULT_MEMORY_BYTES
    # None: resume from the persisted upstream cursor; 0: live; otherwise that seq.
    override_relay_cursor: int | None = None
    trust_relay: bool = False
    dev_mode: bool = False
    nats_url: str | None = None  # None: do not publish to NATS
    nats_stream: str = DEFAULT_NATS_STREAM
    nats_subject: str = DEFAULT_NATS_SUBJECT
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT

    @property
    def db_path(self) -> Path:
        return self.data_dir / "jetstream.sqlite"

    @classmethod
    def load(
        cls,
        env: Mapping[str, str],
        *,
        host: str | None = None,
        port: int | None = None,
        data_dir: str | None = None,
    ) -> JetstreamConfig:
        override = env.get("JETSTREAM_OVERRIDE_RELAY_CURSOR")
        config = cls(
            data_dir=Path(data_dir or env.get("JETSTREAM_DATA_DIR") or DEFAULT_DATA_DIR),
            ws_url=env.get("JETSTREAM_WS_URL") or DEFAULT_WS_URL,
            plc_url=(env.get("JETSTREAM_PLC_URL") or DEFAULT_PLC_URL).rstrip("/"),
            event_ttl=env_duration(env, "JETSTREAM_EVENT_TTL", DEFAULT_EVENT_TTL),
            max_log_bytes=env_int(env, "JETSTREAM_MAX_LOG_BYTES", DEFAULT_MAX_LOG_BYTES),
            memory_bytes=env_int(env, "JETSTREAM_MEMORY_BYTES", DEFAULT_MEMORY_BYTES),
            override_relay_cursor=None
            if not override
            else env_int(env, "JETSTREAM_OVERRIDE_RELAY_CURSOR", 0),
            trust_relay=env_bool(env, "JETSTREAM_TRUST_RELAY"),
            dev_mode=env_bool(env, "JETSTREAM_DEV_MODE"),
            nats_url=env.get("JETSTREAM_NATS_URL") or None,
            nats_stream=env.get("JETSTREAM_NATS_STREAM") or DEFAULT_NATS_STREAM,
            nats_subject=env.get("JETSTREAM_NATS_SUBJECT") or DEFAULT_NATS_SUBJECT,
            host=host or DEFAULT_HOST,
            port=port if port is not None else DEFAULT_PORT,
        )
        config.validate()
        return config

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0-65535, got {self.port}")
        if not self.ws_url.startswith(("ws://", "wss://")):
            raise ConfigError(f"JETSTREAM_WS_URL must be a ws(s):// URL, got {self.ws_url!r}")
        if not self.plc_url.startswith(("http://", "https://")):
            raise ConfigError(f"JETSTREAM_PLC_URL must be an http(s) URL, got {self.plc_url!r}")
        if self.event_ttl <= 0:
            raise ConfigError("JETSTREAM_EVENT_TTL must be positive")
        if self.max_log_bytes < 1024**2:
            raise ConfigError("JETSTREAM_MAX_LOG_BYTES must be at least 1 MiB")
        if self.memory_bytes < 1024**2:
            raise ConfigError("JETSTREAM_MEMORY_BYTES must be at least 1 MiB")
        if self.override_relay_cursor is not None and self.override_relay_cursor < 0:
            raise ConfigError("JETSTREAM_OVERRIDE_RELAY_CURSOR must not be negative")
        if self.nats_url is not None and not self.nats_url.startswith(("nats://", "tls://")):
            raise ConfigError(f"JETSTREAM_NATS_URL must be a nats:// URL, got {self.nats_url!r}")
        for name, value in (
            ("JETSTREAM_NATS_STREAM", self.nats_stream),
            ("JETSTREAM_NATS_SUBJECT", self.nats_subject),
        ):
            if not _NATS_TOKEN.fullmatch(value):
                raise ConfigError(f"{name} must be 1-64 letters, digits, _ or -, got {value!r}")
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise ConfigError(f"data directory {self.data_dir} exists and is not a directory")
