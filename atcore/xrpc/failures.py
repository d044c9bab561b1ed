"""Mapping any exception to one XRPC error (spec-xrpc.md, "Error Responses"; STYLE.md #8).

`XrpcError`s pass through; the protocol core's domain errors (every `ValueError` subclass in
`atcore.errors`: InvalidSyntax, DecodeError, InvalidRecord, ...) are the client's fault and
become 400 InvalidRequest with their message; anything else is our bug, logged with its
traceback and answered as a bare 500.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse

from atcore import errors
from atcore.xrpc.errors import InternalServerError, InvalidRequest, XrpcError

log = logging.getLogger("atcore.xrpc")

DOMAIN_ERRORS: tuple[type[ValueError], ...] = tuple(
    value
    for value in vars(errors).values()
    if isinstance(value, type) and issubclass(value, ValueError)
)


def to_xrpc_error(exc: BaseException, where: str) -> XrpcError:
    """The XRPC error to answer `exc` with; logs server-side failures (`where` names the method)."""
    if isinstance(exc, XrpcError):
        if exc.status >= 500:
            log.error("%s error in %s: %s", exc.error, where, exc.message, exc_info=exc)
        return exc
    if isinstance(exc, DOMAIN_ERRORS):
        return InvalidRequest(str(exc))
    log.error("unhandled %s in %s", type(exc).__name__, where, exc_info=exc)
    return InternalServerError()


def error_response(exc: BaseException, where: str) -> JSONResponse:
    """A JSON error response for `exc`, with the error's own headers (Retry-After, ...)."""
    error = to_xrpc_error(exc, where)
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)
