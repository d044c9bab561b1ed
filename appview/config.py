"""Appview configuration, read once from the official appview's BSKY_* variables and flags.

Names follow `@atproto/bsky` where they match: BSKY_PUBLIC_URL, BSKY_SERVER_DID (the `aud` that
service-auth tokens must name; by default `did:web` of the public host), BSKY_DID_PLC_URL,
BSKY_REPO_PROVIDER (the relay whose firehose is indexed, `ws(s)://` or `http(s)://`),
BSKY_CDN_URL (where image URLs in views point), BSKY_VIDEO_PLAYLIST_URL_PATTERN and
BSKY_VIDEO_THUMBNAIL_URL_PATTERN (where video URLs point), BSKY_DB_POSTGRES_URL (PostgreSQL
instead of SQLite in the data directory) and BSKY_DB_POSTGRES_SCHEMA (its schema, `public` by
default).
Ours: BSKY_DATA_DIRECTORY (`--data-dir` overrides it), BSKY_DEV_MODE (loopback and `.test`
hosts allowed) and BSKY_TRUST_RELAY (index commits without checking their signatures again),
BSKY_IMAGE_CACHE_MAX_BYTES (the disk the image service's renditions may take, 1 GiB by default),
BSKY_INDEX_WORKERS (processes that check commits and decode their records for the indexer; one
per core by default, 0 keeps that work in the serving process).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from atcore.identity.did_web import did_web
from runtime.env import ConfigError, env_bool, env_int
from runtime.postgres import SCHEMA_NAME

DEFAULT_PORT: Final = 2584
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_DATA_DIR: Final = "data/appview"
DEFAULT_PLC_URL: Final = "https://plc.directory"
DEFAULT_IMAGE_CACHE_BYTES: Final = 1 << 30
DEFAULT_POSTGRES_SCHEMA: Final = "public"
MAX_INDEX_WORKERS: Final = 64


@dataclass(frozen=True)
class AppviewConfig:
    data_dir: Path
    plc_url: str = DEFAULT_PLC_URL
    repo_provider: str | None = None
    public_url: str | None = None
    server_did: str | None = None
    cdn_url: str | None = None
    video_playlist_pattern: str | None = None
    video_thumbnail_pattern: str | None = None
    postgres_url: str | None = None
    postgres_schema: str = DEFAULT_POSTGRES_SCHEMA
    dev_mode: bool = False
    trust_relay: bool = False
    image_cache_max_bytes: int = DEFAULT_IMAGE_CACHE_BYTES
    index_workers: int = 0
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT

    @property
    def db_path(self) -> Path:
        return self.data_dir / "appview.sqlite"

    @property
    def signing_key_path(self) -> Path:
        return self.data_dir / "signing-key.hex"

    @property
    def base_url(self) -> str:
        """The public URL, or where this process listens when none is configured."""
        if self.public_url is not None:
            return self.public_url
        host = "localhost" if self.host in ("127.0.0.1", "0.0.0.0", "::1", "::") else self.host
        return f"http://{host}:{self.port}"

    @property
    def did(self) -> str:
        """The service DID: BSKY_SERVER_DID, else did:web of the public host."""
        if self.server_did is not None:
            return self.server_did
        return did_web(urlsplit(self.base_url).netloc)

    @property
    def image_base(self) -> str:
        """Where image URLs in views point: BSKY_CDN_URL as given (the reference's value ends in
        `/img`), else this appview's own image service."""
        return self.cdn_url or f"{self.base_url}/img"

    @property
    def video_patterns(self) -> tuple[str, str]:
        """Where video URLs in views point, as the reference's BSKY_VIDEO_PLAYLIST_URL_PATTERN
        and BSKY_VIDEO_THUMBNAIL_URL_PATTERN: `%s` the author's DID, then the video's CID;
        this appview's `/vid/` paths by default, as the reference's."""
        return (
            self.video_playlist_pattern or f"{self.base_url}/vid/%s/%s/playlist.m3u8",
            self.video_thumbnail_pattern or f"{self.base_url}/vid/%s/%s/thumbnail.jpg",
        )

    @property
    def image_cache_dir(self) -> Path:
        return self.data_dir / "images"

    @classmethod
    def load(
        cls,
        env: Mapping[str, str],
        *,
        host: str | None = None,
        port: int | None = None,
        data_dir: str | None = None,
    ) -> AppviewConfig:
        config = cls(
            data_dir=Path(data_dir or env.get("BSKY_DATA_DIRECTORY") or DEFAULT_DATA_DIR),
            plc_url=(env.get("BSKY_DID_PLC_URL") or DEFAULT_PLC_URL).rstrip("/"),
            repo_provider=env.get("BSKY_REPO_PROVIDER") or None,
            public_url=_url(env, "BSKY_PUBLIC_URL"),
            server_did=env.get("BSKY_SERVER_DID") or None,
            cdn_url=_url(env, "BSKY_CDN_URL"),
            video_playlist_pattern=env.get("BSKY_VIDEO_PLAYLIST_URL_PATTERN") or None,
            video_thumbnail_pattern=env.get("BSKY_VIDEO_THUMBNAIL_URL_PATTERN") or None,
            postgres_url=env.get("BSKY_DB_POSTGRES_URL") or None,
            postgres_schema=env.get("BSKY_DB_POSTGRES_SCHEMA") or DEFAULT_POSTGRES_SCHEMA,
            dev_mode=env_bool(env, "BSKY_DEV_MODE"),
            trust_relay=env_bool(env, "BSKY_TRUST_RELAY"),
            image_cache_max_bytes=env_int(
                env, "BSKY_IMAGE_CACHE_MAX_BYTES", DEFAULT_IMAGE_CACHE_BYTES, minimum=1 << 20
            ),
            index_workers=env_int(env, "BSKY_INDEX_WORKERS", os.cpu_count() or 1),
            host=host or DEFAULT_HOST,
            port=port if port is not None else DEFAULT_PORT,
        )
        config.validate()
        return config

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0-65535, got {self.port}")
        if not self.plc_url.startswith(("http://", "https://")):
            raise ConfigError(f"BSKY_DID_PLC_URL must be an http(s) URL, got {self.plc_url!r}")
        provider = self.repo_provider
        if provider is not None and not provider.startswith(("ws://", "wss://", "http", "https")):
            raise ConfigError(f"BSKY_REPO_PROVIDER must be a ws(s) or http(s) URL: {provider!r}")
        if self.server_did is not None and not self.server_did.startswith("did:"):
            raise ConfigError(f"BSKY_SERVER_DID must be a DID, got {self.server_did!r}")
        postgres = self.postgres_url
        if postgres is not None and not postgres.startswith(("postgres://", "postgresql://")):
            raise ConfigError(f"BSKY_DB_POSTGRES_URL must be a postgresql:// URL, got {postgres!r}")
        if not SCHEMA_NAME.fullmatch(self.postgres_schema):
            raise ConfigError(
                "BSKY_DB_POSTGRES_SCHEMA must be letters, digits and _ (not first), at most 63,"
                f" got {self.postgres_schema!r}"
            )
        for name, pattern in (
            ("BSKY_VIDEO_PLAYLIST_URL_PATTERN", self.video_playlist_pattern),
            ("BSKY_VIDEO_THUMBNAIL_URL_PATTERN", self.video_thumbnail_pattern),
        ):
            if pattern is not None and (
                not pattern.startswith(("http://", "https://")) or pattern.count("%s") != 2
            ):
                raise ConfigError(
                    f"{name} must be an http(s) URL with two %s (DID, then CID), got {pattern!r}"
                )
        if not 0 <= self.index_workers <= MAX_INDEX_WORKERS:
            raise ConfigError(f"BSKY_INDEX_WORKERS must be 0-{MAX_INDEX_WORKERS}")
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise ConfigError(f"data directory {self.data_dir} exists and is not a directory")


def _url(env: Mapping[str, str], name: str) -> str | None:
    value = (env.get(name) or "").rstrip("/")
    if not value:
        return None
    if not value.startswith(("http://", "https://")) or not urlsplit(value).netloc:
        raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
    return value
