"""The API's one error schema: every 4xx and 5xx answer is `{"detail": "..."}`, a sentence a person can act on;
when the contract or vetting refuses an image (a 422) a `refusal` beside it says what the classifier read and
what may be done. FastAPI's own errors (validation, unknown paths, methods) are answered in this shape too.
Each route lists the statuses it can answer with `responses=error_responses(...)`, so the OpenAPI document
shows them all with this schema."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel


class Refusal(BaseModel):
    """Why the bounty's contract would not pay for an image (a 422 on a submission): nothing was spent."""

    predicted: int
    margin: int
    appealable: bool = False  # a vetted bounty would take an appeal of this image (see SubmissionCreate)
    reason: str | None = None  # vetting's refusal: duplicate, known_image, claimed_by_another, judge_disagrees, ...
    submission_id: int | None = None  # vetting's refusal: the stored receipt


class ErrorResponse(BaseModel):
    """An error: one sentence, and for an image the contract or vetting refuses, the classifier's reading."""

    detail: str
    refusal: Refusal | None = None  # only on an image's 422


WHY = {
    404: "There is no such bounty or submission.",
    408: "The request's body did not arrive within the time limit (`BOUNTY_BODY_TIMEOUT_SECONDS`); the connection "
         "is closed.",
    409: "The bounty takes no submissions (closed, exhausted or busy), or the chain refused the transaction.",
    422: "The request is malformed, the image is unreadable, or the contract would refuse the image "
         "(then `refusal` holds what the classifier read).",
    413: "The request's body is over the limit (`BOUNTY_MAX_UPLOAD_BYTES` for the image, plus 10,000 bytes for "
         "the form); the connection is closed.",
    429: "Too many requests from this client: retry after `Retry-After` seconds.",
    503: "The database or the chain is unavailable: retry in a moment.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that can answer these statuses."""
    return {code: {"model": ErrorResponse, "description": WHY[code]} for code in codes}


def error_response(status_code: int, detail: str, headers: dict[str, str] | None = None,
                   refusal: Refusal | None = None) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    if refusal is not None:
        body["refusal"] = refusal.model_dump()
    return JSONResponse(body, status_code=status_code, headers=headers)
