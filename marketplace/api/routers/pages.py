"""The web page and the health check."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from sqlalchemy import text

from marketplace.api.deps import RuntimeDep
from marketplace.api.errors import error_responses
from marketplace.api.routers import chain
from marketplace.api.schemas import Health

router = APIRouter()
router.include_router(chain.router)  # the dev chain's transaction pages are pages too (app.py includes `router`)


@cache
def _html() -> str:
    return (files("marketplace") / "web" / "index.html").read_text()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def page() -> str:
    return _html()


@router.get("/healthz", response_model=Health, responses=error_responses(503))
def healthz(rt: RuntimeDep) -> Health:
    with rt.session() as session:
        session.execute(text("SELECT 1"))
    return Health(status="ok", tip_height=rt.chain.tip_height(), network=rt.settings.network)
