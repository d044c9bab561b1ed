"""PLC directory configuration, read once from PLC_* variables and command-line flags."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from atcore.identity.plc import MAX_OP_BYTES
from plc.limits import DEFAULT_MAX_OP_BYTES
from runtime.env import ConfigError, env_int

DEFAULT_PORT: Final = 2582
DEFAULT_HOST: Final = "127.0.0.1"
# A signed operation is at most 7500 bytes of DAG-CBOR; its JSON is a little larger.
DEFAULT_MAX_BODY: Final = 64 * 1024
_TRUE: Final = frozenset({"true", "1", "yes"})
_FALSE: Final = frozenset({"false", "0", "no"})


@dataclass(frozen=True)
class PlcConfig:
    data_dir: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_body_bytes: int = DEFAULT_MAX_BODY
    max_op_bytes: int = DEFAULT_MAX_OP_BYTES
    rate_limits_enabled: bool = True

    @property
    def db_path(self) -> Path:
        return self.data_dir / "plc.sqlite"

    @classmethod
    def load(
        cls,
        env: Mapping[str, str],
        *,
        host: str | None = None,
        port: int | None = None,
        data_dir: str | None = None,
    ) -> PlcConfig:
        """Flags override PLC_HOST, PLC_PORT, PLC_DATA_DIRECTORY; then PLC_MAX_BODY_BYTES,
        PLC_MAX_OP_BYTES (DAG-CBOR size of a submitted operation) and PLC_RATE_LIMITS_ENABLED
        (the per-DID operation rate limit, on unless set to false)."""
        raw_dir = data_dir or env.get("PLC_DATA_DIRECTORY")
        if not raw_dir:
            raise ConfigError("no data directory: pass --data-dir or set PLC_DATA_DIRECTORY")
        config = cls(
            data_dir=Path(raw_dir),
            host=host or env.get("PLC_HOST") or DEFAULT_HOST,
            port=port if port is not None else env_int(env, "PLC_PORT", DEFAULT_PORT),
            max_body_bytes=env_int(env, "PLC_MAX_BODY_BYTES", DEFAULT_MAX_BODY),
            max_op_bytes=env_int(env, "PLC_MAX_OP_BYTES", DEFAULT_MAX_OP_BYTES),
            rate_limits_enabled=_bool(env, "PLC_RATE_LIMITS_ENABLED", True),
        )
        config.validate()
        return config

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0-65535, got {self.port}")
        if not self.host or any(c.isspace() for c in self.host):
            raise ConfigError(f"host must be a hostname or IP address, got {self.host!r}")
        if not 1024 <= self.max_body_bytes <= 16 * 1024 * 1024:
            raise ConfigError(
                f"PLC_MAX_BODY_BYTES must be 1024-16777216, got {self.max_body_bytes}"
            )
        if not 1000 <= self.max_op_bytes <= MAX_OP_BYTES:
            # Under ~1000 bytes ordinary operations no longer fit; over the spec's limit no
            # other directory or client would take them.
            raise ConfigError(
                f"PLC_MAX_OP_BYTES must be 1000-{MAX_OP_BYTES}, got {self.max_op_bytes}"
            )
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise ConfigError(f"data directory {self.data_dir} exists and is not a directory")


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if value and value not in _TRUE | _FALSE:
        raise ConfigError(f"{name} must be true or false, got {env[name]!r}")
    return value in _TRUE if value else default
