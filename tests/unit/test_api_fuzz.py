"""Hostile and random input against the HTTP API: never a 5xx, and every 4xx a JSON `detail`.

Three layers:
- schemathesis (4.x) generates requests from the app's own OpenAPI schema for every operation, every
  request media type, in positive (schema-valid) and negative (schema-violating) modes, with path ids
  random or pinned to the funded bounty 1 and its accepted submission 1;
- hypothesis sends random bytes, truncated and mutated PNGs and JPEGs and images declaring huge
  dimensions as image uploads;
- hypothesis sends random path segments, query strings and methods to every route of the app
  (including those left out of the schema: the page, the docs).

The inputs that once gave server errors (ids beyond 64 bits, JSON nested thousands deep, a schema
referring to models it left out) have their own tests at the end.
"""

from __future__ import annotations

import functools
import io
import json
import os
import struct
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import fastapi.routing
import numpy as np
import pytest
import schemathesis
from bsv import Network, PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from starlette.routing import Route

from marketplace.api import create_app
from marketplace.bounties import create_bounty
from marketplace.runtime import Runtime, open_runtime
from marketplace.settings import Settings
from model.artifact import ModelArtifact
from model.data import Mnist
from model.reference import classify
from tests.support.images import paper_png

USER = PrivateKey(7201, network=Network.TESTNET)
INT64 = (-(2**63), 2**63 - 1)  # what the databases store; beyond it see the tests at the end
# Fixed examples by default, so the suite is reproducible; BOUNTY_FUZZ_RANDOM=1 BOUNTY_FUZZ_EXAMPLES=500 explores.
FUZZ = settings(max_examples=int(os.environ.get("BOUNTY_FUZZ_EXAMPLES", "50")), deadline=None, database=None,
                derandomize=os.environ.get("BOUNTY_FUZZ_RANDOM") != "1", suppress_health_check=list(HealthCheck))


# -- the service under test ---------------------------------------------------------------------------------------


class Service:
    def __init__(self, rt: Runtime, app: FastAPI, seven: np.ndarray, other: np.ndarray) -> None:
        self.rt, self.app, self.seven, self.other = rt, app, seven, other
        self.api = TestClient(app, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, shipped: ModelArtifact, mnist: Mnist) -> Iterator[Service]:
    """A funded bounty 1 (digit 7) with one accepted submission 1, so valid ids exist."""
    home = tmp_path_factory.mktemp("fuzz") / "home"
    rt = open_runtime(Settings(_env_file=None, home=home, rate_limit_per_minute=10**7))  # type: ignore[call-arg]
    x = mnist.x_test[:200].reshape(-1, 784)
    labels, margins = classify(shipped.integer, x)
    seven = x[int(np.argmax(np.where(labels == 7, margins, -1)))]
    other = x[int(np.argmax(labels != 7))]
    bounty = create_bounty(rt, [7], 500, 1_000_000)
    assert bounty.id == 1
    app = create_app(rt, background=False)
    svc = Service(rt, app, seven, other)
    first = svc.api.post("/bounties/1/submissions", json={"pixels": seven.tolist(), "address": USER.address()})
    assert first.status_code == 202 and first.json()["id"] == 1, first.text
    yield svc
    rt.close()


def _jpeg(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(255 - pixels.reshape(28, 28)).resize((56, 56)).save(out, format="JPEG", quality=80)
    return out.getvalue()


def assert_answer(status: int, body: bytes, request: str) -> None:
    """Not a server error; a client error explains itself in a JSON `detail`."""
    assert status < 500, f"{request} -> {status}: {body[:500]!r}"
    if 400 <= status < 500:
        try:
            detail = json.loads(body)["detail"]
        except (ValueError, KeyError, TypeError):
            raise AssertionError(f"{request} -> {status} without a JSON detail: {body[:500]!r}") from None
        assert isinstance(detail, str) and detail, f"{request} -> {status}: detail is not a sentence: {detail!r}"


# -- 1. schemathesis, from the OpenAPI schema ----------------------------------------------------------------------

OPERATIONS: dict[tuple[str, str], list[str | None]] = {  # method, path -> request media types (None: no body)
    ("GET", "/healthz"): [None],
    ("GET", "/bounties"): [None],
    ("GET", "/bounties/{bounty_id}"): [None],
    ("GET", "/submissions/{submission_id}"): [None],
    ("GET", "/submissions"): [None],  # a payout address's history: the address and the page are fuzzed
    ("GET", "/network"): [None],
    ("POST", "/classify"): ["application/json", "multipart/form-data"],
    ("POST", "/bounties/{bounty_id}/submissions"): ["application/json", "multipart/form-data"],
}
CASES = [pytest.param(method, path, media, mode, pinned, id=f"{method} {path} {media or ''} {mode} {pinned}".replace(
    "  ", " ")) for (method, path), medias in OPERATIONS.items() for media in medias
    for mode in (["positive", "negative"] if "{" in path or media else ["positive"])
    for pinned in (["random-ids", "existing-ids"] if "{" in path else ["-"])
    if not (pinned == "existing-ids" and mode == "negative")]


@pytest.fixture(scope="module")
def schema(service: Service) -> Any:
    """The served schema (it must define the JSON body models it refers to, or schemathesis would silently
    skip those bodies: see `test_every_reference_in_the_schema_resolves`)."""
    document = service.api.get("/openapi.json").json()
    loaded = schemathesis.openapi.from_dict(document)
    loaded.app = service.app  # requests go straight to the ASGI app, as with `from_asgi`
    return loaded


def test_the_fuzzed_operations_are_all_of_the_schema(schema: Any) -> None:
    found = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert found == set(OPERATIONS)
    for (method, path), medias in OPERATIONS.items():
        bodies = {body.media_type for body in schema[path][method].body}
        assert bodies == {m for m in medias if m}, (method, path, bodies)


@pytest.mark.parametrize("method, path, media, mode, pinned", CASES)
def test_no_operation_answers_a_server_error(schema: Any, method: str, path: str, media: str | None, mode: str,
                                             pinned: str) -> None:
    operation = schema[path][method]
    fixed = {name: 1 for name in ("bounty_id", "submission_id") if "{" + name + "}" in path}
    strategy = operation.as_strategy(generation_mode=GenerationMode(mode), media_type=media,
                                     path_parameters=fixed if pinned == "existing-ids" else None)
    statuses: list[int] = []
    # each POST operation runs in up to 6 variants (2 media types x modes x ids): half as many examples each
    examples = FUZZ.max_examples if method == "GET" else max(1, FUZZ.max_examples // 2)

    @settings(FUZZ, max_examples=examples)
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call()
        statuses.append(response.status_code)
        case.validate_response(response, checks=[not_a_server_error])
        assert_answer(response.status_code, response.content, case.as_curl_command())

    run()
    assert statuses
    if mode == "negative":
        assert all(400 <= s < 500 for s in statuses), statuses  # schema-violating requests are all refused
    if (method, path, media, mode) == ("POST", "/classify", "application/json", "positive"):
        assert 200 in statuses, statuses  # valid 784-pixel bodies were generated and judged


# -- 2. random and hostile image uploads ---------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_declaring(width: int, height: int, mode: int = 0, idat: bytes = b"") -> bytes:
    """A PNG header with valid CRCs declaring width x height (colour type `mode`), then `idat` as its data."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, mode, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _jpeg_declaring(jpeg: bytes, width: int, height: int) -> bytes:
    """A real JPEG whose frame header (SOF0) claims other dimensions."""
    at = jpeg.index(b"\xff\xc0")
    return jpeg[:at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9:]


@st.composite
def uploads(draw: st.DrawFn, seven: np.ndarray, other: np.ndarray) -> bytes:
    png, jpeg = paper_png(seven, 2), _jpeg(other)
    dims = st.integers(0, 2**31 - 1)
    kind = draw(st.sampled_from(["bytes", "png-magic", "truncated", "mutated", "huge-png", "huge-jpeg", "bomb"]))
    if kind == "bytes":
        return draw(st.binary(max_size=4096))
    if kind == "png-magic":
        return draw(st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"])) + draw(st.binary(max_size=2048))
    if kind == "truncated":
        source = draw(st.sampled_from([png, jpeg]))
        return source[:draw(st.integers(0, len(source) - 1))]
    if kind == "mutated":
        data = bytearray(draw(st.sampled_from([png, jpeg])))
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == "huge-png":
        return _png_declaring(draw(dims), draw(dims), draw(st.sampled_from([0, 2, 3, 4, 6, 7])),
                              draw(st.binary(max_size=256)))
    if kind == "huge-jpeg":
        return _jpeg_declaring(jpeg, draw(st.integers(0, 65535)), draw(st.integers(0, 65535)))
    return _bomb(draw(st.sampled_from([4_000, 6_000])))


@functools.cache
def _bomb(side: int) -> bytes:
    """A small PNG that inflates enormously: side x side gray zeros (6000: 36 MB, over the 20 MP limit)."""
    return _png_declaring(side, side, 0, zlib.compress(b"\0" * (side + 1) * side, 9))


def test_random_bytes_as_an_image_never_answer_a_server_error(service: Service) -> None:
    assert len(_bomb(6_000)) < service.rt.settings.max_upload_bytes  # only the pixel check can stop it
    codes: list[int] = []

    @FUZZ
    @given(data=uploads(service.seven, service.other), target=st.sampled_from(["classify", "submit"]),
           name=st.sampled_from(["x.png", "x.jpg", "x", ""]), content_type=st.sampled_from(
               ["image/png", "image/jpeg", "application/octet-stream", "text/plain"]))
    def run(data: bytes, target: str, name: str, content_type: str) -> None:
        if target == "classify":
            url, form = "/classify", {"bounty_id": "1"}
        else:
            url, form = "/bounties/1/submissions", {"address": USER.address()}
        response = service.api.post(url, files={"image": (name, data, content_type)}, data=form)
        codes.append(response.status_code)
        assert_answer(response.status_code, response.content, f"POST {url} image of {len(data)} bytes")

    run()
    assert any(400 <= c < 500 for c in codes)


@pytest.mark.parametrize("width, height", [(100_000, 100_000), (20_001, 1_000), (2**31 - 1, 2**31 - 1), (0, 0)])
def test_an_image_declaring_huge_dimensions_is_refused_before_decoding(service: Service, width: int,
                                                                        height: int) -> None:
    for data in (_png_declaring(width, height), _jpeg_declaring(_jpeg(service.seven), width % 65536,
                                                                height % 65536)):
        response = service.api.post("/classify", files={"image": ("x.png", data, "image/png")})
        assert_answer(response.status_code, response.content, f"{width}x{height}")
        assert response.status_code == 422


# -- 3. every route of the app: random path segments, query strings and methods ------------------------------------

SEGMENTS = st.one_of(st.integers().map(str), st.text(max_size=30), st.sampled_from(
    ["1", "0", "-1", "01", "1.0", "1e3", " 1", "%00", "..", "null", "NaN", "١"]))
QUERIES = st.lists(st.tuples(st.text(max_size=12), st.text(max_size=24)), max_size=4)


def _routes(app: FastAPI) -> list[tuple[str, list[str]]]:
    """Every HTTP route, those of included routers too (FastAPI 0.137+ keeps an included router as one node of
    `app.routes`; `iter_route_contexts`, where it exists, lists what is inside)."""
    expand = getattr(fastapi.routing, "iter_route_contexts", None)
    routes = expand(app.routes) if expand else app.routes
    return [(r.path, sorted(r.methods or [])) for r in routes if isinstance(getattr(r, "original_route", r), Route)]


def test_every_route_with_random_paths_queries_and_methods(service: Service) -> None:
    routes = _routes(service.app)
    assert {"/", "/openapi.json", "/docs", "/healthz", "/bounties/{bounty_id}/submissions"} <= {p for p, _ in routes}

    @FUZZ
    @given(route=st.sampled_from(routes), segment=SEGMENTS, query=QUERIES,
           method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
           body=st.one_of(st.none(), st.binary(max_size=64), st.dictionaries(st.text(max_size=8), st.integers())))
    def run(route: tuple[str, list[str]], segment: str, query: list[tuple[str, str]], method: str,
            body: bytes | dict | None) -> None:
        path, _methods = route
        url = path.replace("{bounty_id}", quote(segment, safe="")).replace("{submission_id}", quote(segment, safe=""))
        kwargs: dict[str, Any] = {"params": query}
        if isinstance(body, dict):
            kwargs["json"] = body
        elif body is not None:
            kwargs["content"] = body
        response = service.api.request(method, url, **kwargs)
        request = f"{method} {url}?{query}"
        if method == "HEAD":
            assert response.status_code < 500, request
        elif path in ("/", "/docs", "/redoc", "/docs/oauth2-redirect") and response.status_code == 200:
            assert response.text  # HTML pages are not JSON
        else:
            assert_answer(response.status_code, response.content, request)

    run()


# -- inputs that once gave server errors ----------------------------------------------------------------------------

BIG = 2**63  # one past SQLite's largest integer


@pytest.mark.parametrize("request_kind", ["GET bounty", "GET negative bounty", "GET submission", "POST submission",
                                          "POST classify JSON", "POST classify form"])
def test_an_id_beyond_64_bits_is_a_client_error(service: Service, request_kind: str) -> None:
    api, address = service.api, USER.address()
    if request_kind == "GET bounty":
        response = api.get(f"/bounties/{BIG}")
    elif request_kind == "GET negative bounty":
        response = api.get(f"/bounties/{-BIG - 1}")
    elif request_kind == "GET submission":
        response = api.get(f"/submissions/{BIG}")
    elif request_kind == "POST submission":
        response = api.post(f"/bounties/{BIG}/submissions", json={"pixels": [0] * 784, "address": address})
    elif request_kind == "POST classify JSON":
        response = api.post("/classify", json={"pixels": [0] * 784, "bounty_id": BIG})
    else:
        response = api.post("/classify", files={"image": ("7.png", paper_png(service.seven, 2), "image/png")},
                            data={"bounty_id": str(BIG)})
    assert_answer(response.status_code, response.content, request_kind)


@pytest.mark.parametrize("url", ["/classify", "/bounties/1/submissions"])
@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 50_000], ids=["arrays", "objects"])
def test_deeply_nested_json_is_a_client_error(service: Service, url: str, body: bytes) -> None:
    response = service.api.post(url, content=body, headers={"content-type": "application/json"})
    assert_answer(response.status_code, response.content, f"POST {url} nested JSON")


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def test_every_reference_in_the_schema_resolves(service: Service) -> None:
    document = service.api.get("/openapi.json").json()
    defined = {f"#/components/schemas/{name}" for name in document.get("components", {}).get("schemas", {})}
    dangling = sorted(set(_references(document)) - defined)
    assert dangling == [], dangling


def test_the_ids_just_inside_64_bits_are_fine(service: Service) -> None:
    """The largest id the databases store is a plain 404; zero and negative ids are refused as malformed."""
    for url in (f"/bounties/{INT64[1]}", f"/submissions/{INT64[1]}"):
        assert service.api.get(url).status_code == 404
    for url in (f"/bounties/{INT64[0]}", "/bounties/0", "/submissions/-1"):
        assert service.api.get(url).status_code == 422
    nested = b"[" * 200 + b"]" * 200  # moderately nested JSON is an ordinary refusal
    response = service.api.post("/classify", content=nested, headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["detail"]
