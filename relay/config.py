"""Relay configuration, read once from the official relay's RELAY_* variables and flags.

Names follow indigo's relay where they match (indigo-relay-README.md): RELAY_ADMIN_PASSWORD,
RELAY_PERSIST_DIR (our data directory, `--data-dir` overrides it), RELAY_REPLAY_WINDOW (a Go
duration such as `72h`), RELAY_LENIENT_SYNC_VALIDATION, RELAY_TRUSTED_DOMAINS,
RELAY_DEFAULT_ACCOUNT_LIMIT, RELAY_NEW_HOSTS_PER_DAY_LIMIT, RELAY_HOST_CONCURRENCY (DIDs of
one host processed at once; also read as RELAY_CONCURRENCY_PER_PDS, as indigo does). Ours:
RELAY_PLC_HOST (the PLC directory URL), RELAY_DEV_MODE (plain-http `localhost:<port>` hosts and
loopback addresses), RELAY_HOSTS (hostnames to crawl from the start), RELAY_HOST_IDLE_TIMEOUT
and RELAY_VERIFY_WORKERS (processes verifying commits, at a lower priority; default: one per
core).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from runtime.env import ConfigError, env_bool, env_duration, env_int

DEFAULT_PORT: Final = 2470
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_DATA_DIR: Final = "data/relay"
DEFAULT_PLC_URL: Final = "https://plc.directory"
DEFAULT_REPLAY_WINDOW: Final = 72 * 3600.0
DEFAULT_IDLE_TIMEOUT: Final = 3600.0
# indigo's defaults: a new host may bring 100 accounts, a trusted one ten million.
DEFAULT_ACCOUNT_LIMIT: Final = 100
TRUSTED_ACCOUNT_LIMIT: Final = 10_000_000
DEFAULT_NEW_HOSTS_PER_DAY: Final = 50
DEFAULT_TRUSTED_DOMAINS: Final = ("*.host.bsky.network",)

MAX_VERIFY_WORKERS: Final = 64


def default_verify_workers() -> int:
    """One verifying process per core: they run at a lower priority (relay.verifier), so they
    take what the serving process leaves of every core and never what it needs."""
    return os.cpu_count() or 1


# DIDs of one host whose events are checked at once: indigo's default, enough to hide a PLC
# 50-200 ms away from the accounts a host brings.
DEFAULT_HOST_CONCURRENCY: Final = 40
MAX_HOST_CONCURRENCY: Final = 1000


@dataclass(frozen=True)
class RelayConfig:
    data_dir: Path
    plc_url: str = DEFAULT_PLC_URL
    admin_password: str | None = None
    replay_window: float = DEFAULT_REPLAY_WINDOW
    lenient_sync: bool = False
    trusted_domains: tuple[str, ...] = DEFAULT_TRUSTED_DOMAINS
    default_account_limit: int = DEFAULT_ACCOUNT_LIMIT
    new_hosts_per_day: int = DEFAULT_NEW_HOSTS_PER_DAY
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    hosts: tuple[str, ...] = ()
    dev_mode: bool = False
    # Processes verifying commits (relay.verifier); 0 verifies in the serving process.
    verify_workers: int = 0
    host_concurrency: int = DEFAULT_HOST_CONCURRENCY
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT

    @property
    def db_path(self) -> Path:
        return self.data_dir / "relay.sqlite"

    def is_trusted(self, hostname: str) -> bool:
        """Exact names, or `*.suffix` patterns matching any subdomain (not the bare suffix)."""
        for pattern in self.trusted_domains:
            if pattern.startswith("*."):
                if hostname.endswith(pattern[1:]):
                    return True
            elif hostname == pattern:
                return True
        return False

    @classmethod
    def load(
        cls,
        env: Mapping[str, str],
        *,
        host: str | None = None,
        port: int | None = None,
        data_dir: str | None = None,
    ) -> RelayConfig:
        trusted = env.get("RELAY_TRUSTED_DOMAINS")
        config = cls(
            data_dir=Path(data_dir or env.get("RELAY_PERSIST_DIR") or DEFAULT_DATA_DIR),
            plc_url=(env.get("RELAY_PLC_HOST") or DEFAULT_PLC_URL).rstrip("/"),
            admin_password=env.get("RELAY_ADMIN_PASSWORD") or None,
            replay_window=env_duration(env, "RELAY_REPLAY_WINDOW", DEFAULT_REPLAY_WINDOW),
            lenient_sync=env_bool(env, "RELAY_LENIENT_SYNC_VALIDATION"),
            trusted_domains=DEFAULT_TRUSTED_DOMAINS if trusted is None else _list(trusted),
            default_account_limit=env_int(
                env, "RELAY_DEFAULT_ACCOUNT_LIMIT", DEFAULT_ACCOUNT_LIMIT
            ),
            new_hosts_per_day=env_int(
                env, "RELAY_NEW_HOSTS_PER_DAY_LIMIT", DEFAULT_NEW_HOSTS_PER_DAY
            ),
            idle_timeout=env_duration(env, "RELAY_HOST_IDLE_TIMEOUT", DEFAULT_IDLE_TIMEOUT),
            hosts=_list(env.get("RELAY_HOSTS", "")),
            dev_mode=env_bool(env, "RELAY_DEV_MODE"),
            verify_workers=env_int(env, "RELAY_VERIFY_WORKERS", default_verify_workers()),
            host_concurrency=env_int(
                env,
                "RELAY_HOST_CONCURRENCY",
                env_int(env, "RELAY_CONCURRENCY_PER_PDS", DEFAULT_HOST_CONCURRENCY),
            ),
            host=host or DEFAULT_HOST,
            port=port if port is not None else DEFAULT_PORT,
        )
        config.validate()
        return config

    def validate(self) -> None:
        if not 0 <= self.verify_workers <= MAX_VERIFY_WORKERS:
            raise ConfigError(f"RELAY_VERIFY_WORKERS must be 0-{MAX_VERIFY_WORKERS}")
        if not 1 <= self.host_concurrency <= MAX_HOST_CONCURRENCY:
            raise ConfigError(f"RELAY_HOST_CONCURRENCY must be 1-{MAX_HOST_CONCURRENCY}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0-65535, got {self.port}")
        if not self.plc_url.startswith(("http://", "https://")):
            raise ConfigError(f"RELAY_PLC_HOST must be an http(s) URL, got {self.plc_url!r}")
        if self.replay_window <= 0:
            raise ConfigError("RELAY_REPLAY_WINDOW must be positive")
        if self.idle_timeout <= 0:
            raise ConfigError("RELAY_HOST_IDLE_TIMEOUT must be positive")
        if self.default_account_limit < 0:
            raise ConfigError("RELAY_DEFAULT_ACCOUNT_LIMIT must not be negative")
        if self.new_hosts_per_day < 0:
            raise ConfigError("RELAY_NEW_HOSTS_PER_DAY_LIMIT must not be negative")
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise ConfigError(f"data directory {self.data_dir} exists and is not a directory")


def _list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())
