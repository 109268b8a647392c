"""Where a person looks a transaction up: every txid a view shows comes with a link in a sibling field named
after it with `_url` (`contract_txid` -> `contract_txid_url`, `txid` -> `txid_url`).

On testnet and mainnet the link is WhatsOnChain's transaction page. The embedded dev chain exists only on this
machine, so its link is the page `bounty serve` itself serves for it (`/chain/tx/{txid}`), relative to the
service's own address, which only the client knows.
"""

from __future__ import annotations

from typing import TypeVar

from bsv import NETWORK_ADDRESS_PREFIX_DICT, Network, to_base58check
from pydantic import BaseModel

from marketplace.errors import NotFound
from marketplace.runtime import Runtime
from marketplace.settings import Settings
from marketplace.views import ChainTx, ChainTxInput, ChainTxOutput

WHATSONCHAIN = {"mainnet": "https://whatsonchain.com/tx/", "testnet": "https://test.whatsonchain.com/tx/"}
DEV_CHAIN_TX_PATH = "/chain/tx/"  # served by marketplace.api.routers.chain, on the local chain only

View = TypeVar("View", bound=BaseModel)


def tx_url(settings: Settings, txid: str | None) -> str | None:
    """The page that shows `txid` on the chain this service pays on; None for no txid."""
    if txid is None:
        return None
    base = DEV_CHAIN_TX_PATH if settings.chain == "local" else WHATSONCHAIN[settings.network]
    return f"{base}{txid}"


def is_txid_field(name: str) -> bool:
    return name == "txid" or name.endswith("_txid")


def linked(view: View, settings: Settings) -> View:
    """A copy of `view` whose `<txid field>_url` siblings hold the links, in nested views and lists too."""
    fields = type(view).model_fields
    updates: dict[str, object] = {}
    for name, value in view:
        if isinstance(value, BaseModel):
            updates[name] = linked(value, settings)
        elif isinstance(value, list) and any(isinstance(item, BaseModel) for item in value):
            updates[name] = [linked(item, settings) if isinstance(item, BaseModel) else item for item in value]
        elif is_txid_field(name) and f"{name}_url" in fields:
            updates[f"{name}_url"] = tx_url(settings, value)
    return view.model_copy(update=updates)


def dev_chain_tx(rt: Runtime, txid: str) -> ChainTx:
    """`txid` as the embedded dev chain holds it, with its links; NotFound on the network backend (WhatsOnChain
    shows those) or for a transaction the dev chain never saw."""
    chain = rt.local_chain
    if chain is None:
        raise NotFound(f"this service pays on {rt.settings.network}, not on the dev chain: look the transaction up "
                       f"at {tx_url(rt.settings, txid)}")
    tx = chain.get_transaction(txid)
    if tx is None:
        raise NotFound(f"the dev chain has no transaction {txid}")
    inputs = []
    for tx_input in tx.inputs:
        source = chain.get_transaction(tx_input.source_txid)
        value = source.outputs[tx_input.source_output_index].satoshis if source is not None else None
        inputs.append(ChainTxInput(source_txid=tx_input.source_txid, source_vout=tx_input.source_output_index,
                                   satoshis=value))
    outputs = []
    for vout, output in enumerate(tx.outputs):
        spender = chain.spender_of(txid, vout)
        outputs.append(ChainTxOutput(vout=vout, satoshis=output.satoshis,
                                     address=_p2pkh_address(output.locking_script.serialize(), rt.settings.network),
                                     script_bytes=len(output.locking_script.serialize()),
                                     spent_by_txid=spender.txid if spender else None))
    status = chain.status(txid)
    known = [i.satoshis for i in inputs if i.satoshis is not None]
    fee = sum(known) - sum(o.satoshis for o in outputs) if len(known) == len(inputs) else None
    return linked(ChainTx(txid=txid, state=str(status.state), block_height=status.block_height,
                          confirmations=chain.confirmations(txid), size_bytes=len(tx.serialize()), fee_sats=fee,
                          inputs=inputs, outputs=outputs), rt.settings)


def _p2pkh_address(script: bytes, network: str) -> str | None:
    """The address a standard P2PKH script pays (OP_DUP OP_HASH160 <20 bytes> OP_EQUALVERIFY OP_CHECKSIG)."""
    if len(script) != 25 or script[:3] != b"\x76\xa9\x14" or script[23:] != b"\x88\xac":
        return None
    return str(to_base58check(script[3:23], NETWORK_ADDRESS_PREFIX_DICT[Network(network)]))
