"""PLC configuration: flags override PLC_* variables; bad values fail with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from plc.config import DEFAULT_PORT, ConfigError, PlcConfig


def test_flags_override_environment(tmp_path: Path) -> None:
    env = {"PLC_DATA_DIRECTORY": str(tmp_path), "PLC_PORT": "9999", "PLC_HOST": "0.0.0.0"}
    assert PlcConfig.load(env) == PlcConfig(data_dir=tmp_path, host="0.0.0.0", port=9999)
    flagged = PlcConfig.load(env, host="127.0.0.1", port=0, data_dir=str(tmp_path / "x"))
    assert (flagged.host, flagged.port, flagged.data_dir) == ("127.0.0.1", 0, tmp_path / "x")
    assert PlcConfig.load({}, data_dir=str(tmp_path)).port == DEFAULT_PORT


def test_operation_limits(tmp_path: Path) -> None:
    """The public directory's 4,000 bytes and the per-DID rate limit are the defaults."""
    default = PlcConfig.load({}, data_dir=str(tmp_path))
    assert (default.max_op_bytes, default.rate_limits_enabled) == (4000, True)
    env = {"PLC_MAX_OP_BYTES": "7500", "PLC_RATE_LIMITS_ENABLED": "false"}
    changed = PlcConfig.load(env, data_dir=str(tmp_path))
    assert (changed.max_op_bytes, changed.rate_limits_enabled) == (7500, False)


@pytest.mark.parametrize(
    "env,message",
    [
        ({}, "PLC_DATA_DIRECTORY"),
        ({"PLC_PORT": "http"}, "PLC_PORT must be an integer"),
        ({"PLC_PORT": "70000"}, "port must be 0-65535"),
        ({"PLC_MAX_BODY_BYTES": "10"}, "PLC_MAX_BODY_BYTES"),
        ({"PLC_HOST": "a b"}, "host must be"),
        ({"PLC_MAX_OP_BYTES": "7501"}, "PLC_MAX_OP_BYTES must be 1000-7500"),
        ({"PLC_MAX_OP_BYTES": "999"}, "PLC_MAX_OP_BYTES must be 1000-7500"),
        ({"PLC_MAX_OP_BYTES": "4k"}, "PLC_MAX_OP_BYTES must be an integer"),
        ({"PLC_RATE_LIMITS_ENABLED": "maybe"}, "PLC_RATE_LIMITS_ENABLED must be true or false"),
    ],
)
def test_bad_settings(tmp_path: Path, env: dict[str, str], message: str) -> None:
    if env:
        env = {"PLC_DATA_DIRECTORY": str(tmp_path), **env}
    with pytest.raises(ConfigError, match=message):
        PlcConfig.load(env)


def test_data_dir_must_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="not a directory"):
        PlcConfig.load({}, data_dir=str(tmp_path / "file"))
