"""`bounty wallet`: the operator wallet that funds bounties, shown so that it can be funded.

Its address (drawn as a QR code in the terminal too, to pay it from a phone's wallet), the network, the balance
and every unspent output with its explorer link, read from the chain the service pays on: the embedded dev chain
(fund it with `bounty chain faucet ADDRESS SATS`) or the network backend (WhatsOnChain). The wallet is the one the
service uses (`Runtime.wallet`: BOUNTY_OPERATOR_WIF, BOUNTY_OPERATOR_KEY_FILE, or on the dev chain the key file
under BOUNTY_HOME, created on first use). Its key is never printed.
"""

from __future__ import annotations

import io
import json
import sys
from typing import Annotated, Any

import typer

from marketplace.cli._output import JsonOption

QUIET_ZONE = 4  # modules of light border around the code, as the QR standard asks
HALF_BLOCKS = "\u2588\u2580\u2584"  # full, upper and lower half blocks


def wallet(as_json: JsonOption = False,
           qr: Annotated[bool, typer.Option("--qr/--no-qr", help="Draw the address as a QR code.")] = True) -> None:
    """The operator wallet: address (with a QR code), network, balance and unspent outputs, to fund it."""
    view = wallet_view()
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    typer.echo(describe(view, qr_lines(view["address"]) if qr else []))


def wallet_view() -> dict[str, Any]:
    """The wallet as `--json` prints it: address, network, chain, balance and unspent outputs with their links."""
    from marketplace.chain import address_network
    from marketplace.chain.errors import WalletError
    from marketplace.explorer import tx_url
    from marketplace.runtime import Runtime
    from marketplace.settings import get_settings

    settings = get_settings()
    rt = Runtime(settings)  # no database is touched: the wallet and the chain only
    try:
        address = rt.wallet.address
        if (theirs := address_network(address)) != settings.network:
            raise WalletError(f"the operator key is a {theirs} key (address {address}) and this service runs on "
                              f"{settings.network} (BOUNTY_NETWORK): configure a {settings.network} key before "
                              "funding it")
        utxos = rt.wallet.utxos(rt.chain)
    finally:
        rt.close()
    return {"address": address, "network": settings.network, "chain": settings.chain,
            "balance_sats": sum(u.satoshis for u in utxos),
            "utxos": [{"txid": u.txid, "vout": u.vout, "satoshis": u.satoshis, "txid_url": tx_url(settings, u.txid)}
                      for u in utxos]}


def describe(view: dict[str, Any], qr: list[str]) -> str:
    """The wallet for people: what it is, how to fund it, the code, then its unspent outputs as a table."""
    address, network, utxos = view["address"], view["network"], view["utxos"]
    outputs = f"{len(utxos)} unspent output{'' if len(utxos) == 1 else 's'}"
    if view["chain"] == "local":
        where = f"the dev chain on this machine ({network} addresses)"
        funding = f"bounty chain faucet {address} 1000000"
    else:
        where = f"{network} (ARC and WhatsOnChain)"
        funding = f"pay {address} from a {network} wallet" + (" (scan the code below)" if qr else "")
    lines = ["operator wallet", f"  {'address':<10} {address}", f"  {'network':<10} {where}",
             f"  {'balance':<10} {view['balance_sats']:,} sats in {outputs}", f"  {'fund it':<10} {funding}"]
    if qr:
        lines += ["", *qr]
    lines += ["", f"{'txid':<64} {'vout':>4} {'satoshis':>14}  link"]
    lines += [f"{u['txid']:<64} {u['vout']:>4} {u['satoshis']:>14,}  {u['txid_url']}" for u in utxos]
    return "\n".join(lines)


def qr_lines(text: str) -> list[str]:
    """`text` as a QR code (error correction M) drawn with text: segno's compact terminal drawing (two module rows per
    line in Unicode half blocks, light modules as ink for a light-on-dark terminal), or where standard output cannot
    print those, `##` for each light module, one module row per line."""
    import segno

    code = segno.make(text, error="m", micro=False)
    if _prints(HALF_BLOCKS):
        drawn = io.StringIO()
        code.terminal(out=drawn, border=QUIET_ZONE, compact=True)
        return drawn.getvalue().splitlines()
    return ["".join("  " if dark else "##" for dark in row) for row in code.matrix_iter(scale=1, border=QUIET_ZONE)]


def _prints(characters: str) -> bool:
    """Whether standard output's encoding has `characters` (not under a Latin-1 or ASCII locale)."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        characters.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True
