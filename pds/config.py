"""PDS configuration, read once from the reference PDS's variables (pds-README-self-hosting.md).

Flags (`--host`, `--port`, `--data-dir`) override the environment. Every missing or bad setting
raises ConfigError whose one-line message names the variable. `PDS_DEV_MODE=true` fills in
local-network defaults (hostname `localhost`, handles under `.test`, the local PLC on 2582,
invites and rate limits off, the local appview on 2584, no report service) and keeps a
generated rotation key and secrets in the data directory, so a development server can restart
without losing its accounts' DIDs.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from atcore.errors import InvalidKey, InvalidSyntax
from atcore.keys import PrivateKey, generate_k256, private_key_from_hex
from atcore.syntax.did import parse_did
from atcore.syntax.handle import is_valid_handle
from runtime.env import ConfigError, env_int

DEFAULT_PORT: Final = 2583
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_BLOB_LIMIT: Final = 100 * 1024 * 1024
DEFAULT_PLC_URL: Final = "https://plc.directory"
DEV_PLC_URL: Final = "http://127.0.0.1:2582"
DEFAULT_APPVIEW: Final = ("https://api.bsky.app", "did:web:api.bsky.app")
# `skyloft appview serve` in dev mode: its default port, and the did:web of that public host
# (the appview's BSKY_SERVER_DID default), port colon percent-encoded as did:web requires.
DEV_APPVIEW: Final = ("http://localhost:2584", "did:web:localhost%3A2584")
DEFAULT_REPORT_SERVICE: Final = ("https://mod.bsky.app", "did:plc:ar7c4by46qjdydhdevvrndac")
DEFAULT_CRAWLERS: Final = ("https://bsky.network",)
_TRUE: Final = frozenset({"true", "1", "yes"})
_FALSE: Final = frozenset({"false", "0", "no", ""})
_DEV_KEY_FILE: Final = "dev-plc-rotation-key.hex"
_DEV_SECRET_FILE: Final = "dev-jwt-secret"


@dataclass(frozen=True)
class PdsConfig:
    hostname: str
    data_dir: Path
    blobstore_dir: Path
    plc_url: str
    jwt_secret: str = field(repr=False)
    admin_password: str = field(repr=False)
    plc_rotation_key_hex: str = field(repr=False)
    handle_domains: tuple[str, ...]
    invite_required: bool
    crawlers: tuple[str, ...]
    appview_url: str | None
    appview_did: str | None
    blob_upload_limit: int
    dev_mode: bool
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    # Operations (issue 5): mail, invites earned over time, rate limits, the report service.
    email_smtp_url: str | None = field(default=None, repr=False)
    email_from_address: str | None = None
    invite_interval_ms: int | None = None
    invite_epoch_ms: int = 0
    rate_limits_enabled: bool = False
    rate_limit_bypass_key: str | None = field(default=None, repr=False)
    rate_limit_bypass_ips: tuple[str, ...] = ()
    report_service_url: str | None = None
    report_service_did: str | None = None
    # Migration (pds-ACCOUNT_MIGRATION.md): importRepo, bounded like the reference, whose
    # import limit falls back to its blob upload limit when PDS_MAX_REPO_IMPORT_SIZE is unset.
    accepting_imports: bool = True
    max_import_size: int = DEFAULT_BLOB_LIMIT
    # Uploads no record references are deleted after this many seconds (the reference keeps
    # them an hour), by a sweep every `blob_sweep_seconds` (SKYLOFT_PDS_*: no reference name).
    blob_grace_seconds: int = 3600
    blob_sweep_seconds: int = 600

    @property
    def service_did(self) -> str:
        return f"did:web:{self.hostname}"

    @property
    def public_url(self) -> str:
        """Where clients and DID documents reach us; dev mode serves plain http on the port."""
        if self.dev_mode:
            return f"http://{self.hostname}:{self.port}"
        return f"https://{self.hostname}"

    @property
    def account_db_path(self) -> Path:
        return self.data_dir / "account.sqlite"

    def rotation_key(self) -> PrivateKey:
        return private_key_from_hex("k256", self.plc_rotation_key_hex)

    @classmethod
    def load(
        cls,
        env: Mapping[str, str],
        *,
        host: str | None = None,
        port: int | None = None,
        data_dir: str | None = None,
    ) -> PdsConfig:
        dev = _bool(env, "PDS_DEV_MODE", False)
        raw_dir = data_dir or env.get("PDS_DATA_DIRECTORY")
        if not raw_dir:
            raise ConfigError("PDS_DATA_DIRECTORY is not set (or pass --data-dir)")
        data = Path(raw_dir)
        if data.exists() and not data.is_dir():
            raise ConfigError(f"PDS_DATA_DIRECTORY {data} exists and is not a directory")
        hostname = _hostname(env.get("PDS_HOSTNAME") or ("localhost" if dev else ""))
        default_domains = ".test" if dev else f".{hostname}"
        default_appview = DEV_APPVIEW if dev else DEFAULT_APPVIEW
        appview_url = env.get("PDS_BSKY_APP_VIEW_URL") or default_appview[0]
        if appview_url is not None:
            appview_url = _check_url(appview_url, "PDS_BSKY_APP_VIEW_URL")
        appview_did = env.get("PDS_BSKY_APP_VIEW_DID") or default_appview[1]
        if appview_did is not None:
            _did(appview_did, "PDS_BSKY_APP_VIEW_DID")
        if (appview_url is None) != (appview_did is None):
            raise ConfigError("PDS_BSKY_APP_VIEW_URL and PDS_BSKY_APP_VIEW_DID go together")
        report_url, report_did = _service_pair(
            env, "PDS_REPORT_SERVICE", (None, None) if dev else DEFAULT_REPORT_SERVICE
        )
        smtp_url = env.get("PDS_EMAIL_SMTP_URL") or None
        if smtp_url is not None and urlsplit(smtp_url).scheme not in ("smtp", "smtps"):
            raise ConfigError("PDS_EMAIL_SMTP_URL must be an smtp:// or smtps:// URL")
        interval = env.get("PDS_INVITE_INTERVAL")
        blob_limit = env_int(env, "PDS_BLOB_UPLOAD_LIMIT", DEFAULT_BLOB_LIMIT, 1024)
        config = cls(
            hostname=hostname,
            data_dir=data,
            blobstore_dir=Path(env.get("PDS_BLOBSTORE_DISK_LOCATION") or data / "blocks"),
            plc_url=_check_url(
                env.get("PDS_DID_PLC_URL") or (DEV_PLC_URL if dev else DEFAULT_PLC_URL),
                "PDS_DID_PLC_URL",
            ),
            jwt_secret=_secret(env, "PDS_JWT_SECRET", data, dev),
            admin_password=_required(env, "PDS_ADMIN_PASSWORD", "admin" if dev else None),
            plc_rotation_key_hex=_rotation_key(env, data, dev),
            handle_domains=_domains(env.get("PDS_SERVICE_HANDLE_DOMAINS") or default_domains),
            invite_required=_bool(env, "PDS_INVITE_REQUIRED", not dev),
            crawlers=_crawlers(env, () if dev else DEFAULT_CRAWLERS),
            appview_url=appview_url,
            appview_did=appview_did,
            blob_upload_limit=blob_limit,
            dev_mode=dev,
            host=host or env.get("PDS_HOST") or DEFAULT_HOST,
            port=port if port is not None else env_int(env, "PDS_PORT", DEFAULT_PORT, 0),
            email_smtp_url=smtp_url,
            email_from_address=env.get("PDS_EMAIL_FROM_ADDRESS") or None,
            invite_interval_ms=env_int(env, "PDS_INVITE_INTERVAL", 0, 1) if interval else None,
            invite_epoch_ms=env_int(env, "PDS_INVITE_EPOCH", 0, 0),
            rate_limits_enabled=_bool(env, "PDS_RATE_LIMITS_ENABLED", not dev),
            rate_limit_bypass_key=env.get("PDS_RATE_LIMIT_BYPASS_KEY") or None,
            rate_limit_bypass_ips=tuple(
                ip.strip()
                for ip in env.get("PDS_RATE_LIMIT_BYPASS_IPS", "").split(",")
                if ip.strip()
            ),
            report_service_url=report_url,
            report_service_did=report_did,
            accepting_imports=_bool(env, "PDS_ACCEPTING_REPO_IMPORTS", True),
            max_import_size=env_int(env, "PDS_MAX_REPO_IMPORT_SIZE", blob_limit, 1024),
            blob_grace_seconds=env_int(env, "SKYLOFT_PDS_BLOB_GRACE_SECONDS", 3600, 1),
            blob_sweep_seconds=env_int(env, "SKYLOFT_PDS_BLOB_SWEEP_SECONDS", 600, 1),
        )
        if not 0 <= config.port <= 65535:
            raise ConfigError(f"PDS_PORT must be 0-65535, got {config.port}")
        return config


def _required(env: Mapping[str, str], name: str, dev_default: str | None) -> str:
    value = env.get(name) or dev_default
    if not value:
        raise ConfigError(f"{name} is not set")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name)
    if value is None:
        return default
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _hostname(value: str) -> str:
    if not value:
        raise ConfigError("PDS_HOSTNAME is not set")
    if value != "localhost" and not is_valid_handle(value):
        raise ConfigError(f"PDS_HOSTNAME must be a bare hostname, got {value!r}")
    return value.lower()


def _check_url(value: str, name: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _did(value: str, name: str) -> None:
    try:
        parse_did(value)
    except InvalidSyntax:
        raise ConfigError(f"{name} must be a DID, got {value!r}") from None


def _service_pair(
    env: Mapping[str, str], prefix: str, default: tuple[str | None, str | None]
) -> tuple[str | None, str | None]:
    """`<prefix>_URL` and `<prefix>_DID`, both or neither."""
    url = env.get(f"{prefix}_URL") or default[0]
    did = env.get(f"{prefix}_DID") or default[1]
    if (url is None) != (did is None):
        raise ConfigError(f"{prefix}_URL and {prefix}_DID go together")
    if url is not None and did is not None:
        url = _check_url(url, f"{prefix}_URL")
        _did(did, f"{prefix}_DID")
    return url, did


def _domains(value: str) -> tuple[str, ...]:
    domains = []
    for item in value.split(","):
        domain = item.strip().lower()
        if not domain:
            continue
        domain = domain if domain.startswith(".") else f".{domain}"
        if not is_valid_handle("x" + domain):
            raise ConfigError(f"PDS_SERVICE_HANDLE_DOMAINS has a bad domain {item.strip()!r}")
        domains.append(domain)
    if not domains:
        raise ConfigError("PDS_SERVICE_HANDLE_DOMAINS names no domain")
    return tuple(domains)


def _crawlers(env: Mapping[str, str], default: tuple[str, ...]) -> tuple[str, ...]:
    value = env.get("PDS_CRAWLERS")
    if value is None:
        return default
    return tuple(_check_url(u.strip(), "PDS_CRAWLERS") for u in value.split(",") if u.strip())


def _dev_file(data: Path, name: str, make: str) -> str:
    """A dev-mode secret kept in the data directory, created on first use."""
    path = data / name
    if path.exists():
        return path.read_text().strip()
    data.mkdir(parents=True, exist_ok=True)
    path.write_text(make)
    path.chmod(0o600)
    return make


def _secret(env: Mapping[str, str], name: str, data: Path, dev: bool) -> str:
    value = env.get(name)
    if value:
        return value
    if not dev:
        raise ConfigError(f"{name} is not set")
    return _dev_file(data, _DEV_SECRET_FILE, secrets.token_hex(32))


def _rotation_key(env: Mapping[str, str], data: Path, dev: bool) -> str:
    name = "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX"
    value = env.get(name)
    if not value:
        if not dev:
            raise ConfigError(f"{name} is not set")
        value = _dev_file(data, _DEV_KEY_FILE, generate_k256().hex())
    try:
        private_key_from_hex("k256", value.strip())
    except (InvalidKey, ValueError):
        raise ConfigError(f"{name} is not a 32-byte secp256k1 private key in hex") from None
    return value.strip()
