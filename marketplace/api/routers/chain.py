"""The dev chain's transaction page: where the explorer links of the embedded mode lead (WhatsOnChain has no
view of a chain that lives on this machine). On the network backend it answers 404 naming WhatsOnChain's page."""

from __future__ import annotations

from html import escape
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse

from marketplace import explorer
from marketplace.api.deps import RuntimeDep
from marketplace.views import ChainTx

router = APIRouter()
TxId = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="a transaction id: 64 lowercase hex digits")]


@router.get("/chain/tx/{txid}", response_class=HTMLResponse, include_in_schema=False)
def transaction_page(txid: TxId, rt: RuntimeDep) -> str:
    return _page(explorer.dev_chain_tx(rt, txid))


def _link(txid: str | None, url: str | None) -> str:
    return "–" if txid is None else f'<a href="{escape(url or "")}">{escape(txid)}</a>'


def _page(tx: ChainTx) -> str:
    inputs = "".join(f"<tr><td>{_link(i.source_txid, i.source_txid_url)}:{i.source_vout}</td>"
                     f"<td>{'–' if i.satoshis is None else f'{i.satoshis:,}'}</td></tr>" for i in tx.inputs)
    outputs = "".join(f"<tr><td>{o.vout}</td><td>{o.satoshis:,}</td>"
                      f"<td>{escape(o.address) if o.address else f'script of {o.script_bytes:,} bytes'}</td>"
                      f"<td>{_link(o.spent_by_txid, o.spent_by_txid_url)}</td></tr>" for o in tx.outputs)
    fee = "–" if tx.fee_sats is None else f"{tx.fee_sats:,} sats"
    height = "–" if tx.block_height is None else str(tx.block_height)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>transaction {tx.txid[:12]}… on the dev chain</title>
<style>body {{ font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 900px; padding: 1.2rem; }}
td, th {{ padding: .2rem .6rem; text-align: left; word-break: break-all; }} dt {{ color: #666; }}
dl {{ display: grid; grid-template-columns: max-content 1fr; gap: .2rem .8rem; }} dd {{ margin: 0; }}</style></head>
<body><h1>Transaction on the dev chain</h1>
<dl id="tx"><dt>txid</dt><dd id="txid">{escape(tx.txid)}</dd><dt>state</dt><dd>{escape(tx.state)}</dd>
<dt>block</dt><dd>{height}</dd><dt>confirmations</dt><dd id="confirmations">{tx.confirmations}</dd>
<dt>size</dt><dd>{tx.size_bytes:,} bytes</dd><dt>fee</dt><dd>{fee}</dd></dl>
<h2>Inputs</h2><table id="inputs"><tr><th>spends</th><th>sats</th></tr>{inputs}</table>
<h2>Outputs</h2><table id="outputs"><tr><th>#</th><th>sats</th><th>pays</th><th>spent by</th></tr>{outputs}</table>
<p><a href="/">back to the bounties</a></p></body></html>"""
