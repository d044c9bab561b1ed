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


@pytest.mark.parametrize(
    "env,message",
    [
        ({}, "PLC_DATA_DIRECTORY"),
        ({"PLC_PORT": "http"}, "PLC_PORT must be an integer"),
        ({"PLC_PORT": "70000"}, "port must be 0-65535"),
        ({"PLC_MAX_BODY_BYTES": "10"}, "PLC_MAX_BODY_BYTES"),
        ({"PLC_HOST": "a b"}, "host must be"),
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
