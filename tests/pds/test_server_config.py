"""PdsConfig: the reference PDS's variables, dev-mode defaults, one-line errors naming them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from atcore.keys import generate_k256
from pds.config import ConfigError, PdsConfig

KEY = generate_k256().hex()
PRODUCTION = {
    "PDS_HOSTNAME": "pds.example.com",
    "PDS_JWT_SECRET": "s3cret",
    "PDS_ADMIN_PASSWORD": "admin-pw",
    "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX": KEY,
}


def test_production_settings_and_reference_defaults(tmp_path: Path) -> None:
    config = PdsConfig.load(PRODUCTION, data_dir=str(tmp_path))
    assert config.service_did == "did:web:pds.example.com"
    assert config.public_url == "https://pds.example.com"
    assert config.handle_domains == (".pds.example.com",)
    assert config.plc_url == "https://plc.directory"
    assert config.crawlers == ("https://bsky.network",)
    assert config.appview_url == "https://api.bsky.app"
    assert config.appview_did == "did:web:api.bsky.app"
    assert config.invite_required is True
    assert config.blob_upload_limit == 100 * 1024 * 1024
    assert config.port == 2583
    assert config.blobstore_dir == tmp_path / "blocks"
    assert config.rotation_key().hex() == KEY
    assert "s3cret" not in repr(config) and KEY not in repr(config)


def test_flags_override_environment(tmp_path: Path) -> None:
    env = {**PRODUCTION, "PDS_PORT": "9999", "PDS_DATA_DIRECTORY": "/nonexistent"}
    config = PdsConfig.load(env, host="0.0.0.0", port=0, data_dir=str(tmp_path))
    assert (config.host, config.port, config.data_dir) == ("0.0.0.0", 0, tmp_path)


def test_every_variable_is_read(tmp_path: Path) -> None:
    env = {
        **PRODUCTION,
        "PDS_DATA_DIRECTORY": str(tmp_path),
        "PDS_PORT": "3000",
        "PDS_BLOBSTORE_DISK_LOCATION": str(tmp_path / "blobs"),
        "PDS_DID_PLC_URL": "http://127.0.0.1:2582/",
        "PDS_SERVICE_HANDLE_DOMAINS": "example.com, .Other.Example",
        "PDS_INVITE_REQUIRED": "false",
        "PDS_CRAWLERS": "https://relay.one,https://relay.two",
        "PDS_BSKY_APP_VIEW_URL": "https://appview.example",
        "PDS_BSKY_APP_VIEW_DID": "did:web:appview.example",
        "PDS_BLOB_UPLOAD_LIMIT": "1048576",
    }
    config = PdsConfig.load(env)
    assert config.data_dir == tmp_path and config.port == 3000
    assert config.blobstore_dir == tmp_path / "blobs"
    assert config.plc_url == "http://127.0.0.1:2582"
    assert config.handle_domains == (".example.com", ".other.example")
    assert config.invite_required is False
    assert config.crawlers == ("https://relay.one", "https://relay.two")
    assert config.appview_url == "https://appview.example"
    assert config.blob_upload_limit == 1048576


def test_dev_mode_defaults_persist_generated_secrets(tmp_path: Path) -> None:
    first = PdsConfig.load({"PDS_DEV_MODE": "true"}, data_dir=str(tmp_path), port=4000)
    assert first.hostname == "localhost" and first.public_url == "http://localhost:4000"
    assert first.handle_domains == (".test",)
    assert first.invite_required is False and first.crawlers == ()
    assert first.appview_url == "http://localhost:2584"
    assert first.appview_did == "did:web:localhost%3A2584"
    again = PdsConfig.load({"PDS_DEV_MODE": "1"}, data_dir=str(tmp_path))
    assert again.plc_rotation_key_hex == first.plc_rotation_key_hex
    assert again.jwt_secret == first.jwt_secret


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"PDS_HOSTNAME": ""}, "PDS_HOSTNAME"),
        ({"PDS_HOSTNAME": "https://x.com"}, "PDS_HOSTNAME"),
        ({"PDS_JWT_SECRET": ""}, "PDS_JWT_SECRET"),
        ({"PDS_ADMIN_PASSWORD": ""}, "PDS_ADMIN_PASSWORD"),
        ({"PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX": ""}, "PDS_PLC_ROTATION_KEY_K256"),
        ({"PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX": "ab" * 31}, "PDS_PLC_ROTATION_KEY_K256"),
        ({"PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX": "ff" * 32}, "PDS_PLC_ROTATION_KEY_K256"),
        ({"PDS_PORT": "http"}, "PDS_PORT"),
        ({"PDS_PORT": "70000"}, "PDS_PORT"),
        ({"PDS_DID_PLC_URL": "plc.directory"}, "PDS_DID_PLC_URL"),
        ({"PDS_SERVICE_HANDLE_DOMAINS": ",,"}, "PDS_SERVICE_HANDLE_DOMAINS"),
        ({"PDS_SERVICE_HANDLE_DOMAINS": ".bad_domain"}, "PDS_SERVICE_HANDLE_DOMAINS"),
        ({"PDS_INVITE_REQUIRED": "maybe"}, "PDS_INVITE_REQUIRED"),
        ({"PDS_DEV_MODE": "sure"}, "PDS_DEV_MODE"),
        ({"PDS_CRAWLERS": "ftp://relay"}, "PDS_CRAWLERS"),
        ({"PDS_BSKY_APP_VIEW_DID": "not-a-did"}, "PDS_BSKY_APP_VIEW_DID"),
        ({"PDS_BLOB_UPLOAD_LIMIT": "-5"}, "PDS_BLOB_UPLOAD_LIMIT"),
    ],
)
def test_bad_settings_name_the_variable(tmp_path: Path, change: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        PdsConfig.load({**PRODUCTION, **change}, data_dir=str(tmp_path))
    message = str(raised.value)
    assert named in message and "\n" not in message


def test_missing_data_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PDS_DATA_DIRECTORY"):
        PdsConfig.load(PRODUCTION)
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(ConfigError, match="PDS_DATA_DIRECTORY"):
        PdsConfig.load(PRODUCTION, data_dir=str(not_a_dir))


def test_serve_stops_with_one_line_naming_the_variable(tmp_path: Path) -> None:
    env = {"PATH": "", "PDS_HOSTNAME": "pds.example.com"}
    result = subprocess.run(
        [sys.executable, "-m", "skyloft", "pds", "serve", "--data-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["skyloft pds serve: PDS_JWT_SECRET is not set"]
