"""`create_app(config)`: the did:plc directory as a Starlette app (plc-server-openapi3.yaml)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from atcore.errors import InvalidPlcOperation
from plc.api import ROUTES
from plc.config import PlcConfig
from plc.context import PlcContext
from plc.operations import Clock, PlcOperations, system_clock
from plc.store import PlcStore

log = logging.getLogger(__name__)


def _version() -> str:
    try:
        return version("skyloft")
    except PackageNotFoundError:
        return "unknown"


# The reference directory's error body is {"message": ...} (plc-server-openapi3.yaml).
async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"message": exc.detail}, status_code=exc.status_code)


async def _bad_operation(request: Request, exc: Exception) -> Response:
    return JSONResponse({"message": str(exc)}, status_code=400)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error serving %s %s", request.method, request.url.path)
    return JSONResponse({"message": "internal server error"}, status_code=500)


def create_app(config: PlcConfig, *, clock: Clock = system_clock) -> Starlette:
    """The directory app; `clock` is injectable so tests can move time (72h recovery window)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = await PlcStore.open(config.db_path)
        ops = PlcOperations(store, clock, rate_limited=config.rate_limits_enabled)
        app.state.ctx = PlcContext(config, store, ops, _version())
        try:
            yield
        finally:
            await store.close()

    return Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        exception_handlers={
            HTTPException: _http_error,
            InvalidPlcOperation: _bad_operation,
            Exception: _internal_error,
        },
    )
