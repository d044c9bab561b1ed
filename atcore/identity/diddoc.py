"""Extract atproto identity facts from a resolved DID document (spec-did.md, "DID Documents")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from atcore.errors import InvalidDidDocument, InvalidKey
from atcore.keys import LEGACY_KEY_TYPES, PublicKey, parse_multibase_key
from atcore.syntax.did import Did
from atcore.syntax.handle import Handle, is_valid_handle, parse_handle

SIGNING_KEY_ID: Final = "#atproto"
PDS_SERVICE_ID: Final = "#atproto_pds"
PDS_SERVICE_TYPE: Final = "AtprotoPersonalDataServer"
MULTIKEY_TYPE: Final = "Multikey"
# Real documents have a handful of entries; anything beyond this is abuse, not a DID document.
MAX_ENTRIES: Final = 64
MAX_URL_LENGTH: Final = 2048


@dataclass(frozen=True)
class Service:
    """One usable `service` entry: its fragment (with '#'), type and validated endpoint URL."""

    fragment: str
    type: str
    endpoint: str


@dataclass(frozen=True)
class DidDocument:
    """The atproto view of a DID document. `handle` is only claimed, not yet verified."""

    did: Did
    handle: Handle | None
    signing_key: PublicKey | None
    services: tuple[Service, ...]

    @property
    def pds_endpoint(self) -> str | None:
        return self.service_endpoint(PDS_SERVICE_ID, PDS_SERVICE_TYPE)

    def service_endpoint(self, service_id: str, service_type: str | None = None) -> str | None:
        """Endpoint of the first service with this id (`#x`, `x` or `<did>#x`) and type.

        `service_type=None` matches any type, as `atproto-proxy: did#service_id` headers do.
        """
        fragment = _fragment(service_id, self.did) if "#" in service_id else f"#{service_id}"
        for service in self.services:
            if service.fragment == fragment and service_type in (None, service.type):
                return service.endpoint
        return None

    def require_signing_key(self) -> PublicKey:
        if self.signing_key is None:
            raise InvalidDidDocument(f"DID document of {self.did} has no valid #atproto key")
        return self.signing_key

    def require_pds_endpoint(self) -> str:
        endpoint = self.pds_endpoint
        if endpoint is None:
            raise InvalidDidDocument(f"DID document of {self.did} has no valid PDS service")
        return endpoint


def parse_did_document(doc: object, did: Did) -> DidDocument:
    """Check that `doc` is `did`'s document and pull out handle, signing key and services.

    Wrongly typed structure raises InvalidDidDocument. Individual entries that are unusable (a
    key of an unknown type, a service whose endpoint is not a bare http(s) URL) are skipped:
    the spec asks for the *first valid* entry of each kind.
    """
    if not isinstance(doc, Mapping):
        raise InvalidDidDocument("DID document is not a JSON object")
    if doc.get("id") != did:
        raise InvalidDidDocument(f"DID document id {doc.get('id')!r:.100} is not {did}")
    aliases = _string_list(doc, "alsoKnownAs")
    methods = _object_list(doc, "verificationMethod")
    services = _object_list(doc, "service")
    return DidDocument(
        did=did,
        handle=_claimed_handle(aliases),
        signing_key=_signing_key(methods, did),
        services=tuple(s for s in (_service(entry, did) for entry in services) if s is not None),
    )


def _string_list(doc: Mapping[str, Any], name: str) -> list[str]:
    value = doc.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidDidDocument(f"DID document {name} is not a list of strings")
    if len(value) > MAX_ENTRIES:
        raise InvalidDidDocument(f"DID document {name} has more than {MAX_ENTRIES} entries")
    return value


def _object_list(doc: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    value = doc.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise InvalidDidDocument(f"DID document {name} is not a list of objects")
    if len(value) > MAX_ENTRIES:
        raise InvalidDidDocument(f"DID document {name} has more than {MAX_ENTRIES} entries")
    return value


def _fragment(entry_id: object, did: Did) -> str | None:
    """'#frag' for ids written `#frag` or `<did>#frag`; None for any other DID's fragments."""
    if not isinstance(entry_id, str):
        return None
    prefix, sep, frag = entry_id.partition("#")
    if not sep or prefix not in ("", did):
        return None
    return f"#{frag}"


def _claimed_handle(aliases: list[str]) -> Handle | None:
    for alias in aliases:
        if alias.startswith("at://") and is_valid_handle(alias[5:]):
            return parse_handle(alias[5:])
    return None


def _signing_key(methods: list[Mapping[str, Any]], did: Did) -> PublicKey | None:
    for method in methods:
        if _fragment(method.get("id"), did) != SIGNING_KEY_ID:
            continue
        if method.get("controller") != did:
            continue
        key_type = method.get("type")
        multibase = method.get("publicKeyMultibase")
        if not isinstance(key_type, str) or not isinstance(multibase, str):
            continue
        if key_type != MULTIKEY_TYPE and key_type not in LEGACY_KEY_TYPES:
            continue
        try:
            return parse_multibase_key(multibase, LEGACY_KEY_TYPES.get(key_type))
        except InvalidKey:
            continue
    return None


def _service(entry: Mapping[str, Any], did: Did) -> Service | None:
    fragment = _fragment(entry.get("id"), did)
    service_type = entry.get("type")
    endpoint = entry.get("serviceEndpoint")
    if fragment is None or not isinstance(service_type, str) or not isinstance(endpoint, str):
        return None
    url = normalize_service_url(endpoint)
    return None if url is None else Service(fragment, service_type, url)


def normalize_service_url(url: str) -> str | None:
    """`scheme://host[:port]` for a bare http(s) server URL; None if it has any other parts.

    The spec allows only scheme, hostname and port in service endpoints: userinfo, a path
    prefix, a query or a fragment are refused. A single trailing '/' is dropped.
    """
    if len(url) > MAX_URL_LENGTH or not url.isascii() or any(c.isspace() for c in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if "@" in parts.netloc or parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    if url.endswith("?") or url.endswith("#"):
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + ("" if port is None else f":{port}")
