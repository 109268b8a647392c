"""Submissions: send an image for payment, read a submission's progress, and a payout address's history."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Query, Request

from marketplace import submissions
from marketplace.api._forms import submission_body
from marketplace.api.deps import RuntimeDep, client_address
from marketplace.api.errors import error_responses
from marketplace.api.schemas import MAX_ID, UPLOAD_FORMS, BountyId, SubmissionId
from marketplace.views import SubmissionHistory, SubmissionPublic

router = APIRouter()
PayoutAddress = Annotated[str, Query(min_length=1, max_length=100, description="a payout address (P2PKH)")]
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="how many of the newest to skip")]
Limit = Annotated[int, Query(ge=1, le=100, description="how many to return, at most 100")]


@router.get("/submissions", response_model=SubmissionHistory, responses=error_responses(422, 503))
def submissions_of_address(address: PayoutAddress, rt: RuntimeDep, offset: Offset = 0,
                           limit: Limit = 20) -> SubmissionHistory:
    """The submissions paying `address`, newest first, a page at a time: what each became (status, `reason` and
    `reason_text`), its payout and its transaction's link. An address that is not one of this service's network
    is a 422."""
    return submissions.submissions_of_address(rt, address, offset, limit)


@router.get("/submissions/{submission_id}", response_model=SubmissionPublic, responses=error_responses(404, 422, 503))
def get_submission(submission_id: SubmissionId, rt: RuntimeDep) -> SubmissionPublic:
    return submissions.get_submission(rt, submission_id)


@router.post("/bounties/{bounty_id}/submissions", status_code=202, response_model=SubmissionPublic,
             responses=error_responses(404, 408, 409, 413, 422, 429, 503), openapi_extra=UPLOAD_FORMS)
async def submit(bounty_id: BountyId, request: Request, rt: RuntimeDep) -> SubmissionPublic:
    """Submit an image for payment. One the contract would refuse gets 422 and costs nothing; so does one a
    vetted bounty's vetting refuses (its receipt, with the reason, is then at /submissions/{id})."""
    body = await submission_body(request, rt.settings.max_upload_bytes)
    client = client_address(rt, request)
    # vetting and building and validating a ~86 KB spend take tens of ms: keep the event loop free meanwhile
    return await anyio.to_thread.run_sync(lambda: submissions.submit(
        rt, bounty_id, body.pixels, body.address, appeal=body.appeal, digit=body.digit, client=client))
