"""The operator pages' HTML: the login form and the dashboard (the bounties, the plots, the review queue, the
exports). Plain HTML forms, no script: every value is escaped here, the router only gathers the data."""

from __future__ import annotations

from html import escape
from typing import Any

from marketplace.views import BountyPublic

STYLE = """body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 1.2rem; }
table { border-collapse: collapse; } td, th { padding: .25rem .6rem; text-align: right; border-bottom: 1px solid #ddd; }
th { background: #f4f4f4; } td.text, th.text { text-align: left; }
.plots img { max-width: 100%; border: 1px solid #ddd; margin: .4rem 0; }
.queue { display: flex; flex-wrap: wrap; gap: .6rem; list-style: none; padding: 0; }
.queue li { border: 1px solid #ddd; padding: .3rem; text-align: center; font-size: 13px; }
.queue img { display: block; image-rendering: pixelated; background: #000; }
.notice { background: #eef8ee; border: 1px solid #9c9; padding: .5rem; }
.error { background: #fbeeee; border: 1px solid #c99; padding: .5rem; }
header { display: flex; justify-content: space-between; align-items: center; }"""


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<meta name="referrer" content="same-origin"><style>{STYLE}</style></head>
<body>{body}</body></html>"""


def login_page(error: str | None = None) -> str:
    """The form that exchanges the operator token for a session cookie."""
    message = f'<p class="error" id="error">{escape(error)}</p>' if error else ""
    return _page("digit-bounty: operator login", f"""<h1>Operator login</h1>{message}
<form method="post" action="/operator/login">
<label>Operator token (<code>BOUNTY_ADMIN_TOKEN</code>) <input type="password" name="token" id="token"
 autocomplete="current-password" required></label>
<button type="submit" id="login">Log in</button></form>""")


def dashboard(network: str, bounties: list[BountyPublic], queue: list[dict[str, Any]], notice: str | None) -> str:
    """Every bounty with its terms and figures, the plots, the review queue with bulk actions, the exports."""
    message = f'<p class="notice" id="notice">{escape(notice)}</p>' if notice else ""
    return _page("digit-bounty: operator", f"""<header><h1>Operator: {escape(network)}</h1>
<form method="post" action="/operator/logout"><button type="submit" id="logout">Log out</button></form></header>
{message}
<h2>Bounties</h2>{_bounties(bounties)}
<h2>Over time</h2><div class="plots">
<img id="activity-plot" src="/operator/plots/activity.png" alt="submissions, payments, refusals by reason, fees and
 model versions over time" width="900">
<img id="lineage-plot" src="/operator/plots/lineage.png" alt="the model lineage: accuracy over versions" width="800">
</div>
<h2>Review queue</h2>{_queue(queue)}""")


def _bounties(bounties: list[BountyPublic]) -> str:
    if not bounties:
        return '<p id="no-bounties">No bounty yet: <code>bounty create</code> makes one.</p>'
    head = ("<tr><th>id</th><th class=text>digits</th><th class=text>mode</th><th class=text>status</th>"
            "<th>payout</th><th>min margin</th><th>cost per image</th><th>budget</th><th>balance</th>"
            "<th>images left</th><th>accepted</th><th>paid</th><th>fees spent</th><th class=text>contract</th>"
            "<th class=text>export</th></tr>")
    rows = "".join(
        f'<tr id="bounty-{b.id}"><td>{b.id}</td><td class=text>{escape(",".join(map(str, b.digits)))}</td>'
        f"<td class=text>{escape(str(b.mode))}</td><td class=text>{escape(str(b.status))}</td>"
        f"<td>{b.payout_sats:,}</td><td>{b.min_margin:,}</td><td class=cost>{b.cost_sats_per_image:,}</td>"
        f"<td>{b.budget_sats:,}</td><td class=balance>{b.remaining_sats:,}</td>"
        f"<td class=images-left>{b.images_left:,}</td><td>{b.accepted_count:,}</td><td>{b.paid_sats:,}</td>"
        f"<td class=fees>{b.fees_spent_sats:,}</td><td class=text>{_link(b.contract_txid, b.contract_txid_url)}</td>"
        f'<td class=text><a class="csv" href="/operator/bounties/{b.id}/export.csv" download>CSV</a> '
        f'<a class="json" href="/operator/bounties/{b.id}/export.json" download>JSON</a></td></tr>'
        for b in bounties)
    return f'<table id="bounties">{head}{rows}</table>'


def _link(txid: str | None, url: str | None) -> str:
    if not txid:
        return "–"
    short = escape(txid[:12]) + "…"
    return f'<a href="{escape(url)}">{short}</a>' if url else short


def _queue(images: list[dict[str, Any]]) -> str:
    if not images:
        return '<p id="queue-empty">No image waits for review.</p>'
    items = "".join(
        f'<li id="image-{i["id"]}"><label><img src="/operator/images/{i["id"]}.png" width="84" height="84" '
        f'alt="training image {i["id"]}"><input type="checkbox" name="image" value="{i["id"]}"> '
        f'#{i["id"]}: a {i["label"]}, bounty {i["bounty_id"]}{", held out" if i["holdout"] else ""}</label></li>'
        for i in images)
    return f"""<form method="post" action="/operator/review" id="review">
<p>{len(images)} image(s) wait for review; approved images train the next model, excluded ones never do.</p>
<ul class="queue">{items}</ul>
<button type="submit" name="action" value="approve" id="approve">Approve the selected</button>
<button type="submit" name="action" value="exclude" id="exclude">Exclude the selected</button></form>"""


__all__ = ["dashboard", "login_page"]
