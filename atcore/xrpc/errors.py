"""The XRPC wire error: a status and `{"error", "message"}` (spec-xrpc.md, "Error Responses").

Handlers raise `XrpcError` (or a subclass) to answer with a specific error; the `error` name
defaults to the one the reference implementation uses for the status, and a method can name
its own lexicon-declared error instead, e.g. `InvalidRequest("no such record", "RecordNotFound")`.
"""

from __future__ import annotations

from collections.abc import Mapping

# Status -> (default error name, default message), as the reference servers and clients name them.
STATUS_NAMES: dict[int, tuple[str, str]] = {
    400: ("InvalidRequest", "Invalid Request"),
    401: ("AuthenticationRequired", "Authentication Required"),
    403: ("Forbidden", "Forbidden"),
    404: ("XRPCNotSupported", "XRPC Not Supported"),
    405: ("InvalidRequest", "Method Not Allowed"),
    406: ("NotAcceptable", "Not Acceptable"),
    413: ("PayloadTooLarge", "Payload Too Large"),
    415: ("UnsupportedMediaType", "Unsupported Media Type"),
    426: ("InvalidRequest", "Upgrade Required"),
    429: ("RateLimitExceeded", "Rate Limit Exceeded"),
    500: ("InternalServerError", "Internal Server Error"),
    501: ("MethodNotImplemented", "Method Not Implemented"),
    502: ("UpstreamFailure", "Upstream Failure"),
    503: ("NotEnoughResources", "Not Enough Resources"),
    504: ("UpstreamTimeout", "Upstream Timeout"),
}


def status_name(status: int) -> str:
    """The conventional error name for an HTTP status (e.g. 502 -> "UpstreamFailure")."""
    if status in STATUS_NAMES:
        return STATUS_NAMES[status][0]
    return "InternalServerError" if status >= 500 else "InvalidRequest"


def error_body(error: str, message: str | None = None) -> dict[str, str]:
    """The JSON body of an error response; `message` is left out when there is none."""
    body = {"error": error}
    if message:
        body["message"] = message
    return body


class XrpcError(Exception):
    """An XRPC failure answered with `status` and `{"error": error, "message": message}`."""

    def __init__(
        self,
        status: int,
        error: str | None = None,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not 400 <= status < 600:
            raise ValueError(f"an XRPC error status must be 4xx or 5xx, not {status}")
        default_error, default_message = STATUS_NAMES.get(status, (status_name(status), ""))
        self.status = status
        self.error = error or default_error
        self.message = message or default_message
        self.headers = dict(headers) if headers else None
        # Set when the failure was logged under a request id (atcore.xrpc.failures).
        self.request_id: str | None = None
        super().__init__(self.message)

    def body(self) -> dict[str, str]:
        """The JSON body; 500s never carry details, which go to the log instead, only the
        request id the log line names."""
        if self.status == 500:
            message = STATUS_NAMES[500][1]
            if self.request_id is not None:
                message = f"{message}, request id {self.request_id}"
            return error_body(self.error, message)
        return error_body(self.error, self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.error!r}, {self.message!r})"


class _FixedStatus(XrpcError):
    """An error class bound to one status: `Cls(message, error=None, headers=None)`."""

    status_code = 500
    default_error: str | None = None
    default_message: str | None = None

    def __init__(
        self,
        message: str | None = None,
        error: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        error = error or self.default_error
        super().__init__(self.status_code, error, message or self.default_message, headers)


class InvalidRequest(_FixedStatus):
    """400: the request is malformed or names something that does not exist."""

    status_code = 400


class AuthRequired(_FixedStatus):
    """401: missing or unusable credentials; `error` may be "ExpiredToken" or "InvalidToken"."""

    status_code = 401


class Forbidden(_FixedStatus):
    """403: authenticated, but not allowed to do this."""

    status_code = 403


class NotFound(_FixedStatus):
    """404: the resource is not here (bare 404s without a body read as "XRPCNotSupported")."""

    status_code = 404
    default_error = "NotFound"
    default_message = "Not Found"


class PayloadTooLarge(_FixedStatus):
    """413: the request body is larger than this method accepts."""

    status_code = 413


class RateLimitExceeded(_FixedStatus):
    """429: a rate limit is exhausted; pass `Retry-After`/`RateLimit-*` in `headers`."""

    status_code = 429


class InternalServerError(_FixedStatus):
    """500: a failure on our side; the message is logged, never sent."""

    status_code = 500


class MethodNotImplemented(_FixedStatus):
    """501: the method is not implemented by this service; clients should not retry."""

    status_code = 501


class UpstreamFailure(_FixedStatus):
    """502: a service we depend on answered badly."""

    status_code = 502


class NotEnoughResources(_FixedStatus):
    """503: temporarily out of capacity."""

    status_code = 503


class UpstreamTimeout(_FixedStatus):
    """504: a service we depend on did not answer in time."""

    status_code = 504
