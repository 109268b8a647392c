"""Submissions: send an image for payment, and read a submission's progress."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request

from marketplace import submissions
from marketplace.api._forms import submission_body
from marketplace.api.deps import RuntimeDep, client_address
from marketplace.api.errors import error_responses
from marketplace.api.schemas import UPLOAD_FORMS, BountyId, SubmissionId
from marketplace.views import SubmissionPublic

router = APIRouter()


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
