"""The API's OpenAPI document as a client reads it: every operation names the model of its answer, and every
error status it can answer is documented with the one error schema, which the real error answers follow."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from marketplace.api import create_app
from marketplace.api.errors import ErrorResponse
from marketplace.runtime import open_runtime
from marketplace.settings import Settings

ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorResponse"}
ERRORS = {  # (method, path) -> the error statuses the operation can answer
    ("get", "/healthz"): {"503"},
    ("get", "/bounties"): {"503"},
    ("get", "/bounties/{bounty_id}"): {"404", "422", "503"},
    ("get", "/submissions/{submission_id}"): {"404", "422", "503"},
    ("get", "/submissions"): {"422", "503"},
    ("get", "/network"): set(),
    ("post", "/classify"): {"404", "408", "409", "413", "422", "429", "503"},
    ("post", "/bounties/{bounty_id}/submissions"): {"404", "408", "409", "413", "422", "429", "503"},
}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    rt = open_runtime(Settings(_env_file=None, home=tmp_path / "home", rate_limit_per_minute=30))  # type: ignore[call-arg]
    yield TestClient(create_app(rt, background=False))
    rt.close()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def test_every_operation_declares_a_response_model(api: TestClient) -> None:
    document = api.get("/openapi.json").json()
    for method, path, operation in operations(document):
        success = [code for code in operation["responses"] if code.startswith("2")]
        assert len(success) == 1, (method, path, success)
        schema = operation["responses"][success[0]]["content"]["application/json"]["schema"]
        named = schema.get("$ref") or schema.get("items", {}).get("$ref")  # a model, or a list of one
        assert named and named.removeprefix("#/components/schemas/") in document["components"]["schemas"], (
            method, path, schema)


def test_every_error_status_is_documented_with_the_one_error_schema(api: TestClient) -> None:
    document = api.get("/openapi.json").json()
    documented = {}
    for method, path, operation in operations(document):
        errors = {code: answer for code, answer in operation["responses"].items() if code[0] in "45"}
        documented[(method, path)] = set(errors)
        for code, answer in errors.items():
            assert answer["content"]["application/json"]["schema"] == ERROR_SCHEMA, (method, path, code)
            assert answer["description"], (method, path, code)
    assert documented == ERRORS
    assert "HTTPValidationError" not in document["components"]["schemas"]  # FastAPI's own 422 shape is not served


def test_error_answers_follow_the_error_schema(api: TestClient) -> None:
    """Every error answer is one sentence under `detail`: the project's errors and FastAPI's own (validation of a
    path or a body, an unknown path, a method a path does not take), the size limit and the rate limit."""
    answers = {
        "missing": (api.get("/bounties/99"), 404),
        "malformed id": (api.get("/submissions/0"), 422),
        "not a number": (api.get("/bounties/seven"), 422),
        "refused body": (api.post("/classify", json={"pixels": [0] * 783}), 422),
        "oversized": (api.post("/classify", content=b"[" * 2_010_001, headers={"content-type": "application/json"}),
                      413),
        "oversized, chunked": (api.post("/classify", content=iter([b"[" * 1_000_000] * 3),
                                        headers={"content-type": "application/json"}), 413),
        "oversized image in a form": (api.post("/classify", files={"image": ("x.png", b"\x89PNG" + bytes(2_000_000))}),
                                      413),
        "unknown path": (api.get("/nowhere"), 404),
        "wrong method": (api.delete("/bounties"), 405),
    }
    for _ in range(6):  # past the burst of 5 POSTs that 30 a minute allows
        limited = api.post("/classify", json={"pixels": [0] * 784})
    answers["limited"] = (limited, 429)
    assert {name: answer.status_code for name, (answer, _) in answers.items()} == {
        name: code for name, (_, code) in answers.items()}
    for name, (answer, _) in answers.items():
        detail = ErrorResponse.model_validate(answer.json()).detail
        assert isinstance(detail, str) and detail[0].islower() and " " in detail, (name, answer.text)
    assert answers["oversized"][0].json()["detail"] == ("the request is 2,010,001 bytes; the limit is 2,010,000 bytes "
                                                        "(an image of at most 2,000,000 bytes and its form)")
    assert answers["oversized, chunked"][0].json()["detail"].startswith("the request is over 2,010,000 bytes")
    assert answers["oversized image in a form"][0].json()["detail"] == "the image is over the 2,000,000-byte limit"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_documentation_pages_use_only_assets_the_service_serves(api: TestClient, page: str) -> None:
    """/docs works offline: every script, style and icon it names is on this server, and served."""
    html = api.get(page)
    assert html.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
    assert assets and all(asset.startswith("/") and not asset.startswith("//") for asset in assets), assets
    assert "https://" not in html.text and "http://" not in html.text
    for asset in assets:
        served = api.get(asset)
        assert served.status_code == 200 and len(served.content) > 1000, asset
    assert api.get("/openapi.json").json()["openapi"].startswith("3.")
