"""The dry run: what the on-chain classifier answers for an image."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request

from marketplace import submissions
from marketplace.api._forms import classify_body
from marketplace.api.deps import RuntimeDep
from marketplace.api.errors import error_responses
from marketplace.api.schemas import CLASSIFY_FORMS
from marketplace.views import Verdict

router = APIRouter()


@router.post("/classify", response_model=Verdict, responses=error_responses(404, 408, 409, 413, 422, 429, 503),
             openapi_extra=CLASSIFY_FORMS)
async def classify(request: Request, rt: RuntimeDep) -> Verdict:
    """Dry run: what the on-chain classifier answers for an image; no payment, nothing stored."""
    pixels, bounty_id = await classify_body(request, rt.settings.max_upload_bytes)
    return await anyio.to_thread.run_sync(submissions.classify_image, rt, pixels, bounty_id)
