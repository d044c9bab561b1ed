"""Domain errors raised by the protocol core; services map them to XRPC errors."""

from __future__ import annotations


class InvalidSyntax(ValueError):
    """An identifier (DID, handle, NSID, TID, ...) does not match its grammar."""


class DecodeError(ValueError):
    """Bytes are not strict DAG-CBOR, or a value is outside the atproto data model."""


class InvalidCid(ValueError):
    """A CID string or binary form is malformed or uses an unsupported codec/hash."""


class InvalidCar(ValueError):
    """A CAR file is malformed, exceeds a bound, or holds a block whose hash does not match."""


class InvalidMst(ValueError):
    """An MST node or tree violates the canonical layout (order, heights, prefixes)."""


class InvalidSignature(ValueError):
    """A signature is malformed (DER, high-S, wrong length) or does not verify."""


class InvalidKey(ValueError):
    """Key material or a did:key string is malformed or of an unsupported curve."""


class InvalidCommit(ValueError):
    """A commit object is malformed or does not match what it claims."""


class InvalidRecord(ValueError):
    """A record does not validate against its lexicon schema."""


class MissingBlock(KeyError):
    """A block needed to finish an operation is not in the block store."""

    def __init__(self, cid: object) -> None:
        super().__init__(cid)
        self.cid = cid

    def __str__(self) -> str:
        return f"missing block {self.cid}"


class InvalidLexicon(ValueError):
    """A Lexicon schema document is malformed or uses a type where the spec forbids it."""


class LexiconNotFound(LookupError):
    """A schema (NSID or `nsid#name` definition) is not in the lexicon catalog."""


class InvalidPlcOperation(ValueError):
    """A did:plc operation or log breaks the PLC rules (shape, signature, chain, recovery)."""


class IdentityError(Exception):
    """A DID or handle could not be resolved to a usable identity."""


class InvalidDidDocument(IdentityError, ValueError):
    """A DID document is malformed or does not belong to the DID that was resolved."""


class UnsupportedDid(IdentityError):
    """A syntactically valid DID that atproto cannot resolve (other method, path did:web, ...)."""


class DidNotFound(IdentityError):
    """The DID's method reports that the DID does not exist."""


class DidDeactivated(IdentityError):
    """The DID exists but is tombstoned or otherwise no longer available."""


class HandleNotFound(IdentityError):
    """Neither DNS TXT nor HTTPS well-known resolution produced a DID for the handle."""


class UnsafeAddress(IdentityError):
    """An outbound fetch would reach a private, loopback or otherwise non-public address."""


class ResolutionFailed(IdentityError):
    """A network fetch failed: timeout, connection error, bad status, oversized response."""


class ResponseTooLarge(ResolutionFailed):
    """A fetched body is larger than the bound the caller set."""


class PlcRequestError(IdentityError):
    """The PLC directory refused a request; carries its status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"PLC directory answered {status}: {message}")
        self.status = status
        self.message = message
