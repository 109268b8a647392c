"""Reading the two POST bodies, sent as JSON or as a multipart form carrying a photo, within the size limit
(`marketplace.api.body_limits` stops a larger body as it streams in); a photo is decoded to MNIST pixels off
the event loop. Every refusal is a project error (a 422, or a 413 for an image over the limit)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
import numpy as np
from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from marketplace.api.schemas import MAX_ID, ClassifyRequest, SubmissionCreate
from marketplace.errors import InvalidRequest, RequestTooLarge, RequestTooSlow
from marketplace.images import to_mnist

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class SubmissionRequest:
    pixels: np.ndarray
    address: str
    appeal: bool = False
    digit: int | None = None


async def submission_body(request: Request, max_bytes: int) -> SubmissionRequest:
    """The image's pixels, the recipient's address and, for a vetted bounty, an appeal and its claimed digit."""
    fields = await read_fields(request, max_bytes)
    if "image" in fields:
        address = fields.get("address")
        if not isinstance(address, str) or not address.strip():
            raise InvalidRequest("enter your payout address: the Bitcoin SV address the bounty pays to")
        appeal = str(fields.get("appeal", "false")).strip().lower()
        if appeal not in ("true", "false"):
            raise InvalidRequest("appeal must be true or false")
        digit = fields.get("digit")
        if digit is not None and re.fullmatch(r"[0-9]", str(digit).strip()) is None:
            raise InvalidRequest("the claimed digit must be a single digit, 0 to 9")
        return SubmissionRequest(await decode(fields["image"], max_bytes), address.strip(), appeal == "true",
                                 None if digit is None else int(str(digit).strip()))
    body = validated(SubmissionCreate, fields)
    return SubmissionRequest(np.array(body.pixels, dtype=np.uint8), body.address, body.appeal, body.digit)


async def classify_body(request: Request, max_bytes: int) -> tuple[np.ndarray, int | None]:
    """The image's pixels and the bounty to judge it for, if any."""
    fields = await read_fields(request, max_bytes)
    if "image" in fields:
        bounty_id = fields.get("bounty_id")
        bounty_id = form_id(bounty_id, "bounty_id") if bounty_id is not None else None
        return await decode(fields["image"], max_bytes), bounty_id
    body = validated(ClassifyRequest, fields)
    return np.array(body.pixels, dtype=np.uint8), body.bounty_id


async def decode(upload: bytes, max_bytes: int) -> np.ndarray:
    """An uploaded photo to MNIST pixels, off the event loop (a large one takes 100 ms or more)."""
    return await anyio.to_thread.run_sync(to_mnist, upload, max_bytes)


async def read_fields(request: Request, max_bytes: int) -> dict[str, Any]:
    """The request's fields, from JSON or a multipart form (the image as bytes), within the size limit."""
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=1, max_fields=5)
        except (RequestTooLarge, RequestTooSlow):  # from the body's limits (marketplace.api.body_limits)
            raise
        except Exception:  # malformed multipart: starlette raises several types
            raise InvalidRequest("the form could not be read: send a multipart form with an image, or JSON") from None
        fields: dict[str, Any] = {}
        try:
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    fields[key] = await value.read(max_bytes + 1)
                    if len(fields[key]) > max_bytes:
                        raise RequestTooLarge(f"the image is over the {max_bytes:,}-byte limit")
                else:
                    fields[key] = value
        finally:
            await form.close()  # spooled upload files
        if "image" not in fields:
            raise InvalidRequest("add an image: draw a digit, or upload a PNG or JPEG photo of one")
        return fields
    raw = await request.body()  # within the limit: the body's limits stop a larger one as it streams in
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        raise InvalidRequest("the body is not valid JSON (send JSON, or a multipart form with an image)") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the JSON body must be an object")
    return body


def validated(model: type[M], fields: dict[str, Any]) -> M:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise InvalidRequest(explain(exc.errors())) from None


MEANING = {  # what a missing field is, for the sentence that asks for it
    "address": "the payout address, the Bitcoin SV address the bounty pays to",
    "pixels": "the image as 784 integers 0..255",
}


def explain(errors: Any) -> str:
    """Pydantic's errors (of a JSON body or of a path or query parameter) as one sentence a person can act on."""
    parts = []
    for error in list(errors)[:3]:
        names = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
        where = ".".join(names) or "the body"
        kind, message = error.get("type"), str(error.get("msg", "is invalid"))
        if "pixels" in where and kind in ("too_short", "too_long"):
            message = "must be exactly 784 integers 0..255"
        elif kind == "missing":
            message = f"is missing ({MEANING[where]})" if where in MEANING else "is missing"
        elif message.startswith("Input should be "):
            message = "should be " + message.removeprefix("Input should be ")
        parts.append(f"{where} {message}")
    return "; ".join(parts)


def form_id(value: Any, name: str) -> int:
    """An id sent as a form field (a string): an integer within 1..MAX_ID."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidRequest(f"{name} must be an integer") from None
    if not 1 <= number <= MAX_ID:
        raise InvalidRequest(f"{name} must be between 1 and {MAX_ID}")
    return number
