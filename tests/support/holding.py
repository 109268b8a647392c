"""Submissions the service answers 202 without paying at once: an appeal held for an operator's review, and a
claim queued because the chain takes no spend of an unmined output yet."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient

from marketplace.runtime import Runtime
from tests.support.pools import USER, post


def hold_an_appeal(api: TestClient, bounty_id: int, images: np.ndarray, digit: int | None = None) -> dict:
    """Appeal with `images` in turn until the service holds one for review (202), and return its receipt. The
    images are candidates (a model's close seconds): the first few may be refused outright."""
    claim = {} if digit is None else {"digit": digit}
    for image in images:
        answer = api.post(f"/bounties/{bounty_id}/submissions",
                          json={"pixels": image.tolist(), "address": USER.address(), "appeal": True, **claim})
        if answer.status_code == 202:
            return answer.json()
    raise AssertionError(f"none of {len(images)} appeals was held for review")


def queue_until_a_block(rt: Runtime, api: TestClient, bounty_id: int, pixels: np.ndarray) -> dict:
    """Submit while the local chain refuses every spend with an unconfirmed ancestor (so the service queues the
    submission: 202, `pending`, no txid), then mine a block, after which `send_queued` sends it. Returns the
    receipt."""
    chain = rt.local_chain
    assert chain is not None
    limit = chain.max_unconfirmed_ancestors
    chain.max_unconfirmed_ancestors = 0
    try:
        queued = post(api, bounty_id, pixels)
    finally:
        chain.max_unconfirmed_ancestors = limit
    assert (queued["code"], queued["status"], queued["txid"]) == (202, "pending", None), queued
    chain.mine(1)
    return queued
