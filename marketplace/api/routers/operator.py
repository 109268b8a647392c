"""The operator pages (/operator): every bounty with its figures, plots over time, the review queue with bulk
approve and exclude, the exports. Left out of the public OpenAPI document: they are the operator's, not the API's.

Behind `BOUNTY_ADMIN_TOKEN`; without one every route here answers 404, as for a path that does not exist. The
token comes as `Authorization: Bearer TOKEN`, or once through the login form, which answers with an HttpOnly,
SameSite=Strict cookie holding a digest of the token (never the token itself, so no response carries it).
Comparisons take constant time. The bulk actions are POSTs that also check the Origin header against this host.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import threading
from tempfile import TemporaryDirectory
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from PIL import Image
from starlette.exceptions import HTTPException

from marketplace import bounties, exports, review
from marketplace.activity_plot import activity_png
from marketplace.api.deps import RuntimeDep
from marketplace.api.operator_page import dashboard, login_page
from marketplace.api.schemas import MAX_ID
from marketplace.lineage import model_lineage
from marketplace.runtime import Runtime
from marketplace.schema import ReviewStatus

router = APIRouter(prefix="/operator", include_in_schema=False)
COOKIE = "bounty_operator"
THUMBNAIL_SIDE = 84  # 28 x 3: the review queue's images, scaled up without smoothing
NO_TOKEN = "the operator pages need the operator token: log in at /operator, or send it as `Authorization: Bearer`"
WRONG_TOKEN = "that is not the operator token (BOUNTY_ADMIN_TOKEN): log in at /operator, or send the right one"
_pyplot = threading.Lock()  # the lineage plot draws with pyplot, whose state is global
ImageId = Annotated[int, Path(ge=1, le=MAX_ID)]
BountyPath = Annotated[int, Path(ge=1, le=MAX_ID)]


def _token(rt: Runtime) -> bytes:
    """The configured token; none set (or an empty one) means there are no operator pages: 404."""
    secret = rt.settings.admin_token
    token = secret.get_secret_value().encode() if secret is not None else b""
    if not token:
        raise HTTPException(404)
    return token


def _session(token: bytes) -> str:
    """What the login cookie holds: a keyed digest, so the cookie proves the token without being it."""
    return hmac.new(token, b"digit-bounty operator session", hashlib.sha256).hexdigest()


def _bearer(request: Request) -> bytes | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip().encode() if scheme.lower() == "bearer" else None


def _signed_in(request: Request, token: bytes) -> bool:
    """True for the right bearer token or login cookie; a wrong bearer token is a 401 at once."""
    bearer = _bearer(request)
    if bearer is not None:
        if not hmac.compare_digest(bearer, token):
            raise HTTPException(401, WRONG_TOKEN, {"WWW-Authenticate": "Bearer"})
        return True
    cookie = request.cookies.get(COOKIE, "")
    return hmac.compare_digest(cookie.encode(), _session(token).encode())


def _same_origin(request: Request) -> None:
    """A form POST carried by the cookie must come from these pages: the browser's Origin names this host.
    (SameSite=Strict already keeps the cookie off other sites' requests; this is the second lock.)"""
    if _bearer(request) is not None:
        return  # a bearer token is never sent by a browser on another site's behalf
    origin = request.headers.get("origin")
    if origin is None or urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, "this form was sent from another page than the operator pages: open /operator "
                                 "and use the form there")


def operator(request: Request, rt: RuntimeDep) -> Runtime:
    """The dependency of every protected route: the runtime, once the request proved the token."""
    if not _signed_in(request, _token(rt)):
        raise HTTPException(401, NO_TOKEN, {"WWW-Authenticate": "Bearer"})
    return rt


OperatorDep = Annotated[Runtime, Depends(operator)]


@router.get("", response_class=HTMLResponse)
def home(request: Request, rt: RuntimeDep) -> HTMLResponse:
    """The dashboard, or the login form for a browser that has not logged in."""
    if not _signed_in(request, _token(rt)):
        return HTMLResponse(login_page())
    name = "dev chain" if rt.settings.chain == "local" else rt.settings.network
    return HTMLResponse(dashboard(name, bounties.list_bounties(rt),
                                  review.list_images(rt, ReviewStatus.PENDING), _notice(request)))


def _notice(request: Request) -> str | None:
    """What the last bulk action did, from the redirect's query (ids only: nothing else is echoed)."""
    for action in ("approved", "excluded"):
        ids = [part for part in request.query_params.get(action, "").split(",") if part.isdigit()]
        if ids:
            return f"{action.capitalize()} {len(ids)} image(s): {', '.join(ids)}."
    return None


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, rt: RuntimeDep) -> Response:
    token = _token(rt)
    _same_origin_if_given(request)
    given = (await request.form()).get("token")
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), token):
        return HTMLResponse(login_page("That is not the operator token (BOUNTY_ADMIN_TOKEN)."), status_code=401)
    answer = RedirectResponse("/operator", status_code=303)
    answer.set_cookie(COOKIE, _session(token), httponly=True, samesite="strict", path="/operator",
                      secure=request.url.scheme == "https")
    return answer


def _same_origin_if_given(request: Request) -> None:
    # login needs no cookie, so only a foreign Origin is refused (a script's POST sends none)
    if request.headers.get("origin") is not None:
        _same_origin(request)


@router.post("/logout")
def logout(request: Request, rt: RuntimeDep) -> Response:
    _token(rt)
    _same_origin_if_given(request)
    answer = RedirectResponse("/operator", status_code=303)
    answer.delete_cookie(COOKIE, path="/operator", httponly=True, samesite="strict")
    return answer


@router.post("/review")
async def review_images(request: Request, rt: OperatorDep) -> Response:
    """Approve or exclude the selected training images at once (all or none), then back to the dashboard."""
    _same_origin(request)
    form = await request.form()
    action = form.get("action")
    statuses = {"approve": ReviewStatus.APPROVED, "exclude": ReviewStatus.EXCLUDED}
    if action not in statuses:
        raise HTTPException(422, "say what to do with the images: action=approve or action=exclude")
    ids = [str(value) for value in form.getlist("image")]
    if not ids:
        raise HTTPException(422, "select at least one image to approve or exclude")
    if not all(i.isdigit() and 0 < int(i) <= MAX_ID for i in ids):
        raise HTTPException(422, "each image is a training image's id, a positive whole number")
    done = review.set_review(rt, [int(i) for i in ids], statuses[str(action)])
    return RedirectResponse(f"/operator?{action}d={','.join(str(row['id']) for row in done)}", status_code=303)


@router.get("/images/{image_id}.png")
def thumbnail(image_id: ImageId, rt: OperatorDep) -> Response:
    pixels = review.image_pixels(rt, image_id)
    out = io.BytesIO()
    Image.fromarray(pixels).resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.NEAREST).save(out, "PNG")
    return Response(out.getvalue(), media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/plots/activity.png")
def activity_plot(rt: OperatorDep) -> Response:
    return Response(activity_png(rt), media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get("/plots/lineage.png")
def lineage_plot(rt: OperatorDep) -> Response:
    from marketplace.lineage_plot import write_lineage_plot

    lineage = model_lineage(rt)
    with _pyplot, TemporaryDirectory() as directory:
        png = write_lineage_plot(lineage, f"{directory}/lineage.png").read_bytes()
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get("/bounties/{bounty_id}/export.csv")
def export_csv(bounty_id: BountyPath, rt: OperatorDep) -> Response:
    return _download(exports.export_csv(rt, bounty_id), "text/csv; charset=utf-8", f"bounty-{bounty_id}.csv")


@router.get("/bounties/{bounty_id}/export.json")
def export_json(bounty_id: BountyPath, rt: OperatorDep) -> Response:
    return _download(exports.export_json(rt, bounty_id), "application/json", f"bounty-{bounty_id}.json")


def _download(text: str, media_type: str, filename: str) -> Response:
    return Response(text, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'})
