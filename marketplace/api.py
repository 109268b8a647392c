"""The HTTP API (FastAPI) and the web page. Thin: parse and check the request, call the service
functions the CLI uses too, map the project's errors to status codes (this is the only place that does).

In the embedded mode `bounty serve` runs the watcher, a block miner for the dev chain and the
workers inside this process; `create_app(background=False)` leaves them out (tests drive them).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Annotated, Any

import anyio.to_thread
import numpy as np
from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from starlette.datastructures import UploadFile

from marketplace import bounties, submissions
from marketplace.chain.errors import ChainUnavailable, TransactionRejected
from marketplace.errors import BountyClosed, DatabaseUnavailable, ImageError, ImageRefused, InvalidRequest, NotFound
from marketplace.images import to_mnist
from marketplace.ratelimit import RateLimiter
from marketplace.runtime import Runtime
from model.errors import BountyError

log = logging.getLogger(__name__)
Pixels = Annotated[list[Annotated[int, Field(strict=True, ge=0, le=255)]], Field(min_length=784, max_length=784)]
MAX_ID = 2**63 - 1  # ids are 64-bit in both databases: anything larger is a client's mistake, not a lookup
BountyId = Annotated[int, Path(ge=1, le=MAX_ID)]
SubmissionId = Annotated[int, Path(ge=1, le=MAX_ID)]


class SubmissionCreate(BaseModel):
    """An image as 784 integers 0..255 (row-major, white ink on black, as MNIST), and a P2PKH address."""

    pixels: Pixels
    address: Annotated[str, Field(min_length=1, max_length=100)]


class ClassifyRequest(BaseModel):
    pixels: Pixels
    bounty_id: Annotated[int, Field(ge=1, le=MAX_ID)] | None = None


class SubmissionPublic(BaseModel):
    id: int
    bounty_id: int
    status: str
    reason: str | None
    digit: int
    margin: int
    model_sha256: str
    model_version: int | None
    txid: str | None
    recipient_address: str
    source: str
    block_height: int | None
    confirmations: int
    payout_sats: int | None
    created_at: str


class BountyPublic(BaseModel):
    id: int
    digits: list[int]
    payout_sats: int
    min_margin: int
    max_fee_sats: int
    budget_sats: int
    status: str
    remaining_sats: int
    accepted_count: int
    paid_sats: int
    model_version: int | None
    weights_sha256: str | None
    contract_txid: str | None
    contract_version: int | None
    current_outpoint: str | None


class Verdict(BaseModel):
    label: int
    margin: int
    weights_sha256: str
    bounty_id: int | None = None
    accepted: bool | None = None


STATUS = [(NotFound, 404), (BountyClosed, 409), (ImageRefused, 422), (InvalidRequest, 422), (ImageError, 422),
          (TransactionRejected, 409), (ChainUnavailable, 503), (DatabaseUnavailable, 503)]
UPLOAD_FORMS = {"requestBody": {"content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/SubmissionCreate"}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["image", "address"], "properties": {
        "image": {"type": "string", "format": "binary", "description": "PNG or JPEG of a digit, any size"},
        "address": {"type": "string"}}}}}, "required": True}}
CLASSIFY_FORMS = {"requestBody": {"content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/ClassifyRequest"}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
        "image": {"type": "string", "format": "binary"}, "bounty_id": {"type": "integer"}}}}}, "required": True}}


def create_app(rt: Runtime, background: bool | None = None,
               start_background: Callable[[Runtime], Callable[[], None]] | None = None) -> FastAPI:
    """The app around a Runtime. With `background` (default: the embedded mode) the watcher, the dev
    chain's miner and the workers run in this process for the app's lifetime."""
    run_background = rt.settings.embedded if background is None else background
    limiter = RateLimiter(rt.settings.rate_limit_per_minute)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = (start_background or embedded_services)(rt) if run_background else None
        yield
        if stop is not None:
            stop()

    app = FastAPI(title="digit-bounty", version="0.1.0", lifespan=lifespan,
                  description="Bounties for handwritten digits, judged by a neural network inside a BSV contract.")

    @app.exception_handler(BountyError)
    async def project_error(_request: Request, exc: BountyError) -> JSONResponse:
        code = next((c for kind, c in STATUS if isinstance(exc, kind)), 500)
        if code == 500:
            log.error("unexpected project error: %s", exc)
            return JSONResponse({"detail": "internal error"}, status_code=500)
        detail: Any = str(exc)
        if isinstance(exc, ImageRefused):
            detail = {"message": str(exc), "predicted": exc.label, "margin": exc.margin}
        return JSONResponse({"detail": detail}, status_code=code)

    @app.exception_handler(OperationalError)
    async def database_down(_request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", type(exc.orig).__name__ if exc.orig else exc)
        return JSONResponse({"detail": "the database is unavailable: retry in a moment"}, status_code=503,
                            headers={"Retry-After": "5"})

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _explain(exc.errors())}, status_code=422)

    @app.middleware("http")
    async def rate_limit(request: Request, call_next: Any) -> Any:
        if request.method == "POST":
            client = request.client.host if request.client else "unknown"
            wait = limiter.allow(client)
            if wait:
                return JSONResponse({"detail": f"too many requests: retry in {wait:.0f} s"}, status_code=429,
                                    headers={"Retry-After": str(max(1, round(wait)))})
        return await call_next(request)

    html = (files("marketplace") / "web" / "index.html").read_text()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return html

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        with rt.session() as session:
            session.execute(text("SELECT 1"))
        return {"status": "ok", "tip_height": rt.chain.tip_height(), "network": rt.settings.network}

    @app.get("/bounties", response_model=list[BountyPublic])
    def list_bounties() -> list[dict[str, Any]]:
        return bounties.list_bounties(rt)

    @app.get("/bounties/{bounty_id}", response_model=BountyPublic)
    def get_bounty(bounty_id: BountyId) -> dict[str, Any]:
        return bounties.get_bounty(rt, bounty_id)

    @app.get("/submissions/{submission_id}", response_model=SubmissionPublic)
    def get_submission(submission_id: SubmissionId) -> dict[str, Any]:
        return submissions.get_submission(rt, submission_id)

    async def _decode(upload: bytes) -> np.ndarray:
        """An uploaded photo to MNIST pixels, off the event loop (a large one takes 100 ms or more)."""
        return await anyio.to_thread.run_sync(to_mnist, upload, rt.settings.max_upload_bytes)

    @app.post("/classify", response_model=Verdict, openapi_extra=CLASSIFY_FORMS)
    async def classify(request: Request) -> dict[str, Any]:
        """Dry run: what the on-chain classifier answers for an image; no payment, nothing stored."""
        fields = await _read(request, rt.settings.max_upload_bytes)
        bounty_id = fields.get("bounty_id")
        if "image" in fields:
            bounty_id = _id(bounty_id, "bounty_id") if bounty_id is not None else None
            pixels = await _decode(fields["image"])
        else:
            body = _validated(ClassifyRequest, fields)
            pixels, bounty_id = np.array(body.pixels, dtype=np.uint8), body.bounty_id
        return await anyio.to_thread.run_sync(submissions.classify_image, rt, pixels, bounty_id)

    @app.post("/bounties/{bounty_id}/submissions", status_code=202, response_model=SubmissionPublic,
              openapi_extra=UPLOAD_FORMS)
    async def submit(bounty_id: BountyId, request: Request) -> dict[str, Any]:
        """Submit an image for payment. One the contract would refuse gets 422 and costs nothing."""
        fields = await _read(request, rt.settings.max_upload_bytes)
        if "image" in fields:
            address = fields.get("address")
            if not isinstance(address, str) or not address.strip():
                raise InvalidRequest("the form needs an `address` field with your P2PKH address")
            pixels, address = await _decode(fields["image"]), address.strip()
        else:
            body = _validated(SubmissionCreate, fields)
            pixels, address = np.array(body.pixels, dtype=np.uint8), body.address
        # building and validating a ~86 KB spend takes tens of ms: keep the event loop free meanwhile
        return await anyio.to_thread.run_sync(submissions.submit, rt, bounty_id, pixels, address)

    def openapi() -> dict[str, Any]:
        """FastAPI's schema plus the JSON request bodies the two POST routes read by hand."""
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (SubmissionCreate, ClassifyRequest):
                components[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


async def _read(request: Request, max_bytes: int) -> dict[str, Any]:
    """The request's fields, from JSON or a multipart form (the image as bytes), within the size limit."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + 10_000:
        raise ImageError(f"the request is {int(declared):,} bytes; the limit is {max_bytes:,}")
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=1, max_fields=5)
        except Exception:  # malformed multipart: starlette raises several types
            raise InvalidRequest("the multipart form could not be read") from None
        fields: dict[str, Any] = {}
        try:
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    fields[key] = await value.read(max_bytes + 1)
                    if len(fields[key]) > max_bytes:
                        raise ImageError(f"the upload is over the {max_bytes:,}-byte limit")
                else:
                    fields[key] = value
        finally:
            await form.close()  # spooled upload files
        if "image" not in fields:
            raise InvalidRequest("the form needs an `image` file (PNG or JPEG)")
        return fields
    raw = await request.body()
    if len(raw) > max_bytes + 10_000:
        raise ImageError(f"the request is over the {max_bytes:,}-byte limit")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        raise InvalidRequest("the body is not valid JSON (send JSON, or a multipart form with an image)") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the JSON body must be an object")
    return body


def _validated(model: type[Any], fields: dict[str, Any]) -> Any:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise InvalidRequest(_explain(exc.errors())) from None


def _explain(errors: Any) -> str:
    """Pydantic's errors as one sentence a person can act on."""
    parts = []
    for error in list(errors)[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        message = error.get("msg", "is invalid")
        if "pixels" in where and error.get("type") in ("too_short", "too_long"):
            message = "must be exactly 784 integers 0..255"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def _id(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidRequest(f"{name} must be an integer") from None
    if not 1 <= number <= MAX_ID:
        raise InvalidRequest(f"{name} must be between 1 and {MAX_ID}")
    return number


def embedded_services(rt: Runtime) -> Callable[[], None]:
    """The embedded default in threads of this process: the watcher, the workers (Celery on an in-memory
    broker, with beat) and, on the dev chain, a block miner. Returns `stop`."""
    from marketplace.watcher import Watcher
    from workers.app import start_embedded
    from workers.tasks import persist_accepted_task, use_runtime

    use_runtime(rt)
    stop_workers = start_embedded(rt.settings)
    stop = threading.Event()
    watcher = Watcher(rt, on_confirmed=lambda submission_id: persist_accepted_task.delay(submission_id),
                      on_block=lambda: submissions.send_queued(rt))
    thread = threading.Thread(target=watcher.run_forever, args=(stop, 0.5), name="watcher", daemon=True)
    thread.start()
    chain = rt.local_chain
    miner = chain.mine_every(rt.settings.block_interval) if chain is not None else None

    def shutdown() -> None:
        stop.set()
        if miner is not None:
            miner.stop()
        thread.join(timeout=10)
        stop_workers()

    return shutdown
