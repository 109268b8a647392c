"""Where this service pays: the page shows it, so a contributor knows whether the coins are real."""

from __future__ import annotations

from fastapi import APIRouter

from marketplace.api.deps import RuntimeDep
from marketplace.views import NetworkPublic

router = APIRouter()


@router.get("/network", response_model=NetworkPublic)
def network(rt: RuntimeDep) -> NetworkPublic:
    settings = rt.settings
    name = "dev chain" if settings.chain == "local" else settings.network
    return NetworkPublic(name=name, network=settings.network, chain=settings.chain)
