"""The API's OpenAPI document as a client reads it: every operation names the model of its answer, and every
error status it can answer is documented with the one error schema, which the real error answers follow."""

from __future__ import annotations

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
    ("post", "/classify"): {"404", "409", "422", "429", "503"},
    ("post", "/bounties/{bounty_id}/submissions"): {"404", "409", "422", "429", "503"},
}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    rt = open_runtime(Settings(_env_file=None, home=tmp_path / "home", rate_limit_per_minute=6))  # type: ignore[call-arg]
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
    missing = api.get("/bounties/99")
    malformed = api.get("/submissions/0")
    refused = api.post("/classify", json={"pixels": [0] * 783})
    limited = api.post("/classify", json={"pixels": [0] * 784})  # the second POST of a client allowed one a burst
    assert [r.status_code for r in (missing, malformed, refused, limited)] == [404, 422, 422, 429]
    for answer in (missing, malformed, refused, limited):
        assert isinstance(ErrorResponse.model_validate(answer.json()).detail, str), answer.text
