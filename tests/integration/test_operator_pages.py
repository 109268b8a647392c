"""The operator pages over HTTP, on the embedded dev chain with real submissions: hidden without a token, a
sentence for a wrong one, the login cookie, the dashboard's figures, thumbnails and plots, bulk review (and its
Origin check), the exports, and the token in no response at all."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bsv import Network, PrivateKey
from fastapi.testclient import TestClient
from PIL import Image

from marketplace import exports, review
from marketplace.api import create_app
from marketplace.bounties import create_bounty, get_bounty
from marketplace.runtime import Runtime, open_runtime
from marketplace.schema import ReviewStatus
from marketplace.watcher import Watcher
from tests.support.settings import settings_for

TOKEN = "op-token-3c9e71d2a8f54b06"
USER = PrivateKey(7301, network=Network.TESTNET)
HERE = "http://testserver"  # TestClient's origin


class Recorded:
    """A TestClient that keeps every response's headers and body, to search them for the token afterwards."""

    def __init__(self, rt: Runtime) -> None:
        self.api = TestClient(create_app(rt, background=False), follow_redirects=False)
        self.seen: list[bytes] = []

    def __call__(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self.api.request(method, url, **kwargs)
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items())
        self.seen.append(headers.encode() + b"\n\n" + response.content)
        return response


def runtime(tmp_path: Path, token: str | None) -> Runtime:
    extra = {} if token is None else {"admin_token": token}
    return open_runtime(settings_for(tmp_path / "home", **extra))


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime_ = runtime(tmp_path, TOKEN)
    yield runtime_
    runtime_.close()


@pytest.mark.parametrize("token", [None, ""])
def test_without_a_token_there_are_no_operator_pages(tmp_path: Path, token: str | None) -> None:
    rt = runtime(tmp_path, token)
    try:
        call = Recorded(rt)
        for method, url in [("GET", "/operator"), ("POST", "/operator/login"), ("POST", "/operator/review"),
                            ("GET", "/operator/plots/activity.png"), ("GET", "/operator/bounties/1/export.csv"),
                            ("GET", "/operator/images/1.png")]:
            answer = call(method, url, headers={"Authorization": "Bearer anything"}, data={"token": "anything"})
            assert answer.status_code == 404, (url, answer.text)
            assert answer.json()["detail"] == f"there is nothing at {url}"  # as for any path that does not exist
    finally:
        rt.close()


def test_a_wrong_or_missing_token_is_refused_in_a_sentence(rt: Runtime) -> None:
    call = Recorded(rt)
    wrong = call("GET", "/operator/bounties/1/export.json", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert wrong.json()["detail"].startswith("that is not the operator token (BOUNTY_ADMIN_TOKEN)")
    assert call("GET", "/operator", headers={"Authorization": f"Bearer {TOKEN}x"}).status_code == 401
    missing = call("GET", "/operator/plots/activity.png")
    assert missing.status_code == 401 and "log in at /operator" in missing.json()["detail"]
    # the cookie holds a digest of the token: the token itself is no cookie
    forged = call("GET", "/operator/plots/activity.png", headers={"Cookie": f"bounty_operator={TOKEN}"})
    assert forged.status_code == 401
    form = call("GET", "/operator")  # a browser that has not logged in gets the form
    assert form.status_code == 200 and 'name="token"' in form.text
    refused = call("POST", "/operator/login", data={"token": "guess"}, headers={"Origin": HERE})
    assert refused.status_code == 401 and "That is not the operator token" in refused.text
    assert "set-cookie" not in refused.headers
    assert all(TOKEN.encode() not in seen for seen in call.seen)


def _sevens_kept(rt: Runtime, sevens: np.ndarray, call: Recorded, count: int) -> int:
    """An open bounty for a 7, `count` sevens paid through the API, confirmed, and kept for review."""
    from workers.persistence import persist_confirmed

    bounty = create_bounty(rt, [7], 500, 100_000)
    for image in sevens[:count]:
        answer = call("POST", f"/bounties/{bounty.id}/submissions",
                      json={"pixels": image.tolist(), "address": USER.address()})
        assert answer.status_code == 202, answer.text
    watcher = Watcher(rt)
    while watcher.run_once():
        pass
    assert rt.local_chain is not None
    rt.local_chain.mine(1)
    while watcher.run_once():
        pass
    assert persist_confirmed(rt) == count
    return bounty.id


def test_an_operator_logs_in_sees_the_figures_and_reviews_in_bulk(rt: Runtime, sevens: np.ndarray) -> None:
    call = Recorded(rt)
    bounty_id = _sevens_kept(rt, sevens, call, 3)

    login = call("POST", "/operator/login", data={"token": TOKEN}, headers={"Origin": HERE})
    assert login.status_code == 303 and login.headers["location"] == "/operator"
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/operator" in cookie
    session = login.cookies["bounty_operator"]
    assert session and TOKEN not in session

    page = call("GET", "/operator")
    assert page.status_code == 200
    view = get_bounty(rt, bounty_id)
    row = page.text.split(f'id="bounty-{bounty_id}"')[1].split("</tr>")[0]
    for figure in (view.cost_sats_per_image, view.remaining_sats, view.images_left, view.fees_spent_sats):
        assert f">{figure:,}<" in row
    pending = review.list_images(rt, ReviewStatus.PENDING)
    assert len(pending) == 3 and all(f'id="image-{i["id"]}"' in page.text for i in pending)

    thumbnail = call("GET", f"/operator/images/{pending[0]['id']}.png")
    assert thumbnail.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(thumbnail.content)) as picture:
        assert picture.size == (84, 84)
        assert np.array_equal(np.asarray(picture)[::3, ::3], review.image_pixels(rt, pending[0]["id"]))
    assert call("GET", "/operator/images/999.png").status_code == 404
    for plot in ("activity", "lineage"):
        drawn = call("GET", f"/operator/plots/{plot}.png")
        assert drawn.status_code == 200 and drawn.content.startswith(b"\x89PNG\r\n\x1a\n"), plot

    two = [pending[0]["id"], pending[1]["id"]]
    form = {"action": "approve", "image": [str(i) for i in two]}
    assert call("POST", "/operator/review", data=form).status_code == 403  # no Origin: not from our page
    foreign = call("POST", "/operator/review", data=form, headers={"Origin": "https://elsewhere.example"})
    assert foreign.status_code == 403 and "another page" in foreign.json()["detail"]
    assert [i["id"] for i in review.list_images(rt, ReviewStatus.PENDING)] == [i["id"] for i in pending]
    done = call("POST", "/operator/review", data=form, headers={"Origin": HERE})
    assert done.status_code == 303
    statuses = {i["id"]: i["review"] for i in review.list_images(rt)}
    assert [statuses[i] for i in two] == ["approved", "approved"] and statuses[pending[2]["id"]] == "pending"
    assert f"Approved 2 image(s): {two[0]}, {two[1]}." in call("GET", done.headers["location"]).text

    nothing = call("POST", "/operator/review", data={"action": "approve"}, headers={"Origin": HERE})
    assert nothing.status_code == 422 and nothing.json()["detail"] == "select at least one image to approve or exclude"
    unknown = call("POST", "/operator/review", data={"action": "exclude", "image": [str(pending[2]["id"]), "999"]},
                   headers={"Origin": HERE})
    assert unknown.status_code == 404 and review.list_images(rt, ReviewStatus.PENDING)[0]["id"] == pending[2]["id"]

    csv = call("GET", f"/operator/bounties/{bounty_id}/export.csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.text == exports.export_csv(rt, bounty_id) and len(csv.text.strip().splitlines()) == 1 + 3
    exported = call("GET", f"/operator/bounties/{bounty_id}/export.json")
    assert json.loads(exported.text) == json.loads(exports.export_json(rt, bounty_id))
    assert 'filename="bounty-' in exported.headers["content-disposition"]
    assert call("GET", "/operator/bounties/999/export.csv").status_code == 404

    script = Recorded(rt)  # a script: no cookie, no Origin, the token as a bearer
    script.seen = call.seen
    bearer = script("POST", "/operator/review", data={"action": "exclude", "image": str(pending[2]["id"])},
                    headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 303 and review.list_images(rt, ReviewStatus.PENDING) == []

    out = call("POST", "/operator/logout", headers={"Origin": HERE})
    assert out.status_code == 303 and 'name="token"' in call("GET", "/operator").text
    assert all(TOKEN.encode() not in seen for seen in call.seen)


def test_the_operator_pages_are_not_in_the_public_api_document(rt: Runtime) -> None:
    paths = TestClient(create_app(rt, background=False)).get("/openapi.json").json()["paths"]
    assert paths and not [path for path in paths if path.startswith("/operator")]
