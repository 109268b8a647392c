"""Bounties: the list and one bounty's live numbers."""

from __future__ import annotations

from fastapi import APIRouter

from marketplace import bounties
from marketplace.api.deps import RuntimeDep
from marketplace.api.errors import error_responses
from marketplace.api.schemas import BountyId
from marketplace.views import BountyPublic

router = APIRouter()


@router.get("/bounties", response_model=list[BountyPublic], responses=error_responses(503))
def list_bounties(rt: RuntimeDep) -> list[BountyPublic]:
    return bounties.list_bounties(rt)


@router.get("/bounties/{bounty_id}", response_model=BountyPublic, responses=error_responses(404, 422, 503))
def get_bounty(bounty_id: BountyId, rt: RuntimeDep) -> BountyPublic:
    return bounties.get_bounty(rt, bounty_id)
