"""The app factory: the routers around a Runtime, the project's errors mapped to status codes (the only place that
does), the per-client rate limit on POSTs, and the OpenAPI document.

The embedded mode's background services (the watcher, the dev chain's miner, the workers) are composed by
the CLI (`marketplace.cli.embedded`), which hands them in as `start_background`: the service core never
imports the workers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from contracts.errors import ContractError, ScriptError
from marketplace.api._forms import explain
from marketplace.api.access_log import AccessLog
from marketplace.api.body_limits import BodyLimits
from marketplace.api.deps import client_address
from marketplace.api.errors import Refusal, error_response
from marketplace.api.metrics import instrument
from marketplace.api.routers import bounties, classify, network, operator, pages, submissions
from marketplace.api.schemas import HAND_READ_BODIES
from marketplace.bounties import prepare_vetting
from marketplace.chain.errors import ChainUnavailable, TransactionRejected
from marketplace.errors import (
    BountyClosed,
    DatabaseUnavailable,
    ImageError,
    ImageRefused,
    InvalidRequest,
    NotFound,
    RequestTooLarge,
    RequestTooSlow,
    SubmissionRefused,
)
from marketplace.ratelimit import RateLimiter, rate_limiter_for
from marketplace.runtime import Runtime
from model.errors import BountyError

log = logging.getLogger(__name__)
Starter = Callable[[Runtime], Callable[[], None]]  # starts background services; returns the function that stops them
STATUS = [(NotFound, 404), (RequestTooSlow, 408), (RequestTooLarge, 413), (BountyClosed, 409), (ImageRefused, 422),
          (SubmissionRefused, 422), (InvalidRequest, 422),
          (ImageError, 422), (ScriptError, 422), (ContractError, 409), (TransactionRejected, 409),
          (ChainUnavailable, 503), (DatabaseUnavailable, 503)]


def create_app(rt: Runtime, background: bool | None = None, start_background: Starter | None = None) -> FastAPI:
    """The app around a Runtime. `start_background(rt)`, when given, runs for the app's lifetime if `background`
    (default: in the embedded mode): the CLI passes the watcher, the dev chain's miner and the workers."""
    if background and start_background is None:
        raise ValueError("background=True needs `start_background` (the CLI's is marketplace.cli.embedded)")
    run = rt.settings.embedded if background is None else background
    starter = start_background if run else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=_prepare_vetting, args=(rt,), name="prepare-vetting", daemon=True).start()
        stop = starter(rt) if starter is not None else None
        yield
        if stop is not None:
            stop()

    # FastAPIOffline: /docs and /redoc with their scripts and styles served from the package, not a CDN
    app = FastAPIOffline(title="digit-bounty", version="0.1.0", lifespan=lifespan, static_url="/docs-assets",
                         swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from swagger.io
                         description="Bounties for handwritten digits, judged by a neural network inside a BSV "
                                     "contract.")
    app.state.runtime = rt
    for router in (pages.router, network.router, bounties.router, submissions.router, classify.router,
                   operator.router):
        app.include_router(router)
    _handle_errors(app)
    limiter = rate_limiter_for(rt.settings.redis_url, rt.settings.rate_limit_per_minute)  # Redis: one per client
    app.add_middleware(_RateLimit, runtime=rt, limiter=limiter)
    app.add_middleware(BodyLimits, max_upload_bytes=rt.settings.max_upload_bytes,  # outermost: every body
                       drain_bytes=rt.settings.oversized_drain_bytes, timeout=rt.settings.body_timeout_seconds)
    instrument(app, rt)  # /metrics, and every request counted and timed (a 413 or a 429 too) ...
    app.add_middleware(AccessLog)  # ... and logged with its request id
    _describe_bodies(app)
    return app


def _prepare_vetting(rt: Runtime) -> None:
    try:
        prepare_vetting(rt)
    except Exception as exc:  # the first vetted submission will try again, and say what is wrong
        log.warning("could not prepare vetting: %s", exc)


def _handle_errors(app: FastAPI) -> None:
    @app.exception_handler(BountyError)
    async def project_error(_request: Request, exc: BountyError) -> Response:
        code = next((c for kind, c in STATUS if isinstance(exc, kind)), 500)
        if code == 500:
            log.error("unexpected project error: %s", exc)
            return error_response(500, "internal error")
        if isinstance(exc, ImageRefused):
            return error_response(code, str(exc), refusal=Refusal(predicted=exc.label, margin=exc.margin,
                                                                   appealable=exc.appealable))
        if isinstance(exc, SubmissionRefused):
            receipt = exc.receipt
            return error_response(code, str(exc), refusal=Refusal(predicted=receipt.digit, margin=receipt.margin,
                                                                   reason=exc.reason, submission_id=receipt.id))
        return error_response(code, str(exc))

    @app.exception_handler(OperationalError)
    async def database_down(_request: Request, exc: OperationalError) -> Response:
        log.warning("database unavailable: %s", type(exc.orig).__name__ if exc.orig else exc)
        return error_response(503, "the database is unavailable: retry in a moment", {"Retry-After": "5"})

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> Response:
        return error_response(422, explain(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # routing's own errors (an unknown path, a method a path does not take) as sentences in the project's shape
        sentences = {404: f"there is nothing at {request.url.path}",
                     405: f"the method {request.method} is not allowed on {request.url.path}"}
        sentence = sentences.get(exc.status_code, str(exc.detail))
        return error_response(exc.status_code, sentence, dict(exc.headers) if exc.headers else None)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> Response:
        log.exception("unexpected error", exc_info=exc)
        return error_response(500, "internal error")


class _RateLimit:
    """Each client's POSTs (the routes that do work) within the limit; reads are free. Plain ASGI (not
    `@app.middleware`, whose task group would wrap a body's 413 or 408 in an exception group)."""

    def __init__(self, app: ASGIApp, runtime: Runtime, limiter: RateLimiter) -> None:
        self.app, self.runtime, self.limiter = app, runtime, limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            wait = self.limiter.allow(client_address(self.runtime, Request(scope)))
            if wait:
                answer = error_response(429, f"too many requests: retry in {wait:.0f} s",
                                        {"Retry-After": str(max(1, round(wait)))})
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _describe_bodies(app: FastAPI) -> None:
    """FastAPI's schema plus the JSON request bodies the two POST routes read by hand."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in HAND_READ_BODIES:
                components[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
