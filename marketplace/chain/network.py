"""NetworkChain: mainnet or testnet, broadcasting through ARC and reading through WhatsOnChain.

Broadcast: ``POST {arc}/v1/tx`` with the transaction in Extended Format when every input knows the
output it spends (ARC then validates without looking the parents up), raw otherwise. Retrying a
broadcast is safe: ARC answers a known transaction with its status. ARC's answer becomes a
``BroadcastResult`` (QUEUED .. SEEN_ON_NETWORK: mempool; MINED: confirmed) or ``TransactionRejected``
(HTTP 4xx such as 461-475, or REJECTED / INVALID / MALFORMED / ERROR / DOUBLE_SPEND_ATTEMPTED).
A DOUBLE_SPEND_ATTEMPTED transaction can in principle still win the race; ``spender_of`` tells.

Reads go to WhatsOnChain's REST API (paths below, in one place), at ``woc_url``: a bare host (the service's
``BOUNTY_WOC_URL``, ``https://api.whatsonchain.com`` by default) gets the network's API root ``/v1/bsv/<net>``
added; a URL with a path is taken as the root itself (a stand-in, a proxy). Timeouts, connection errors, 5xx
and 429 are retried with backoff, then raise ``ChainUnavailable``. This speaks ARC's REST API with
httpx rather than through bsv-sdk's ``ARC`` broadcaster: the SDK object reports timeouts, refused
connections and HTTP 500 alike as a failure with code "500" and never retries, so telling
retry-later from a rejection would mean parsing its strings.

Events are polled, since neither service pushes them to us here: each ``events_since`` call
  - reads the tip and the hashes of recently seen heights; a changed hash means a reorg, reported as
    ``BlockRemoved`` for each height down to the fork (only heights seen in the last 100 blocks);
  - asks who spends each watched output (``watch(txid, vout)``): a new spender is a
    ``TransactionAccepted`` and is watched in turn. Outputs watched with their script's hash that share one
    script (a pool's prizes) cost one request for that script's unspent outputs, then one for each output
    missing from it, instead of one each per poll;
  - asks where each watched, unconfirmed transaction is (everything broadcast here is watched), but only while
    the tip has moved in the last ``recheck_seconds`` (WhatsOnChain may index a block's transactions a little
    after its header): between blocks nothing confirms, so a poll then costs a few requests, however many
    claims wait for their block;
  - reports each new height as ``BlockMined`` with the watched transactions found in it, at most
    ``MAX_BLOCKS_PER_POLL`` heights per call (the next call continues), and a transaction found in a
    height already reported as a further ``BlockMined`` for that height.
Not covered: transactions nobody watches (blocks carry only watched txids), reorgs deeper than the
heights remembered, mempool evictions that WhatsOnChain does not report. The events are kept in a small
SQLite journal (``journal_path``) so cursors survive restarts like LocalChain's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
from bsv import P2PKH, Script, Transaction
from bsv.utils import Reader, unsigned_to_varint

from contracts.transactions import Utxo, address_pkh
from marketplace.chain import _eventlog
from marketplace.chain._http import HttpService, RetryPolicy
from marketplace.chain._sqlite import Database
from marketplace.chain.base import (
    START,
    BlockMined,
    BlockRemoved,
    BroadcastResult,
    Chain,
    ChainEvent,
    Cursor,
    Spender,
    TransactionAccepted,
    TxState,
    TxStatus,
)
from marketplace.chain.errors import ChainError, TransactionRejected

log = logging.getLogger(__name__)

WOC_HOST = "https://api.whatsonchain.com"
WOC_ROOT = "/v1/bsv/{network}"
NETWORKS = ("main", "test")

# Every path this backend uses, relative to the service's base URL.
ARC_BROADCAST = "/v1/tx"
WOC_CHAIN_INFO = "/chain/info"
WOC_BLOCK_HEADER = "/block/{height}/header"
WOC_TX_HEX = "/tx/{txid}/hex"
WOC_TX_INFO = "/tx/hash/{txid}"
WOC_SPENT = "/tx/{txid}/{vout}/spent"
WOC_ADDRESS_UNSPENT = "/address/{address}/unspent/all"
WOC_SCRIPT_UNSPENT = "/script/{script_hash}/unspent/all"

ARC_REJECTED = frozenset({"REJECTED", "INVALID", "MALFORMED", "ERROR"})
EF_MARKER = bytes.fromhex("0000000000ef")
MAX_BLOCKS_PER_POLL = 10
RECHECK_SECONDS = 60.0  # how long after the tip moves the unconfirmed transactions are looked up each poll
REMEMBERED_BLOCKS = 100

JOURNAL_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS watched_txs (txid TEXT PRIMARY KEY, block_height INTEGER)",
    """CREATE TABLE IF NOT EXISTS watched_outputs (txid TEXT NOT NULL, vout INTEGER NOT NULL, spender TEXT,
        PRIMARY KEY (txid, vout))""",
    # a table of its own (not a column) so that journals written before it open unchanged
    """CREATE TABLE IF NOT EXISTS watched_scripts (txid TEXT NOT NULL, vout INTEGER NOT NULL,
        script_sha256 TEXT NOT NULL, PRIMARY KEY (txid, vout))""",
    "CREATE TABLE IF NOT EXISTS seen_blocks (height INTEGER PRIMARY KEY, hash TEXT NOT NULL)",
    _eventlog.SCHEMA,
]


@dataclass(frozen=True)
class _Found:
    """Where WhatsOnChain says a transaction is."""

    state: TxState
    height: int | None = None
    block_hash: str | None = None


class NetworkChain(Chain):
    """The real network. API keys and the callback token are sent as headers and shown nowhere else."""

    def __init__(self, *, arc_url: str, journal_path: Path | str, network: str = "main",
                 arc_api_key: str | None = None, callback_url: str | None = None, callback_token: str | None = None,
                 wait_for: str | None = None, woc_url: str | None = None, woc_api_key: str | None = None,
                 retry: RetryPolicy | None = None, transport: httpx.BaseTransport | None = None,
                 recheck_seconds: float = RECHECK_SECONDS) -> None:
        if network not in NETWORKS:
            raise ChainError(f"unknown network {network!r}: use one of {', '.join(NETWORKS)}")
        self.network = network
        policy = retry or RetryPolicy()
        arc_headers = {"Content-Type": "application/json"}
        for header, value in (("Authorization", arc_api_key and f"Bearer {arc_api_key}"),
                              ("X-CallbackUrl", callback_url), ("X-CallbackToken", callback_token),
                              ("X-WaitFor", wait_for)):
            if value:
                arc_headers[header] = value
        self._arc = HttpService("ARC", arc_url, arc_headers, policy, transport)
        self._woc = HttpService("WhatsOnChain", woc_root(woc_url, network),
                                {"Authorization": woc_api_key} if woc_api_key else {}, policy, transport)
        self._journal = Database(journal_path, "network-journal", JOURNAL_SCHEMA)
        self._recheck_seconds = recheck_seconds
        self._tip: int | None = None
        self._tip_moved_at = 0.0  # time.monotonic() when this process saw the tip move

    def __repr__(self) -> str:
        return f"NetworkChain(network={self.network!r}, arc={self._arc!r}, woc={self._woc!r})"

    def close(self) -> None:
        self._arc.close()
        self._woc.close()
        self._journal.close()

    def __enter__(self) -> NetworkChain:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- broadcasting ------------------------------------------------------------------------------

    def broadcast(self, tx: Transaction | bytes) -> BroadcastResult:
        raw = tx if isinstance(tx, bytes) else tx.serialize()
        wire = raw if isinstance(tx, bytes) else _extended_format(tx)
        txid = hashlib.sha256(hashlib.sha256(raw).digest()).digest()[::-1].hex()
        response = self._arc.request("POST", ARC_BROADCAST, json={"rawTx": wire.hex()})
        body = _json(response)
        if response.status_code in (401, 403, 404, 405):
            raise ChainError(f"ARC refused the request (HTTP {response.status_code}): check its URL and API key")
        if response.is_error:
            raise TransactionRejected(_arc_problem(body, response.status_code), txid)
        status = str(body.get("txStatus") or "")
        if status in ARC_REJECTED:
            raise TransactionRejected(f"{status}: {body.get('extraInfo') or 'no detail given'}", txid)
        if status == "DOUBLE_SPEND_ATTEMPTED":
            competing = ", ".join(body.get("competingTxs") or []) or "unknown"
            raise TransactionRejected(f"double spend attempted; competing transactions: {competing}", txid)
        self.watch(txid)
        log.info("ARC accepted %s: %s", txid, status)
        return BroadcastResult(txid, TxState.CONFIRMED if status == "MINED" else TxState.MEMPOOL, status)

    # -- reading -----------------------------------------------------------------------------------

    def get_transaction(self, txid: str) -> Transaction | None:
        response = self._read(WOC_TX_HEX.format(txid=txid))
        if response is None:
            return None
        try:
            return Transaction.from_reader(Reader(bytes.fromhex(response.text.strip())))
        except ValueError as exc:
            raise ChainError(f"WhatsOnChain returned an unreadable transaction for {txid}") from exc

    def status(self, txid: str) -> TxStatus:
        found = self._find(txid)
        return TxStatus(txid, found.state, found.height)

    def spender_of(self, txid: str, vout: int) -> Spender | None:
        response = self._read(WOC_SPENT.format(txid=txid, vout=vout))
        if response is None:
            return None
        body = _json(response)
        if not body.get("txid"):
            return None
        return Spender(str(body["txid"]), int(body.get("vin", 0)))

    def tip_height(self) -> int:
        response = self._read(WOC_CHAIN_INFO)
        if response is None:
            raise ChainError("WhatsOnChain has no chain info at this URL")
        return int(_json(response)["blocks"])

    def confirmations(self, txid: str) -> int:
        response = self._read(WOC_TX_INFO.format(txid=txid))
        return 0 if response is None else int(_json(response).get("confirmations") or 0)

    def utxos_for_address(self, address: str) -> list[Utxo]:
        script = P2PKH().lock(address_pkh(address))
        return self._unspent(WOC_ADDRESS_UNSPENT.format(address=address), script)

    def utxos_for_script(self, script: bytes) -> list[Utxo]:
        return self._unspent(_script_unspent_path(hashlib.sha256(script).digest()), Script(script))

    def _unspent(self, path: str, script: Script) -> list[Utxo]:
        response = self._read(path)
        entries = [] if response is None else _json(response).get("result") or []
        return [Utxo(e["tx_hash"], int(e["tx_pos"]), int(e["value"]), script) for e in entries
                if not e.get("isSpentInMempoolTx")]

    def _read(self, path: str) -> httpx.Response | None:
        """A WhatsOnChain GET: the response, None for 404, ChainError for other refusals."""
        response = self._woc.request("GET", path)
        if response.status_code == 404:
            return None
        if response.is_error:
            raise ChainError(f"WhatsOnChain refused GET {path} (HTTP {response.status_code})")
        return response

    def _find(self, txid: str) -> _Found:
        response = self._read(WOC_TX_INFO.format(txid=txid))
        if response is None:
            return _Found(TxState.UNKNOWN)
        body = _json(response)
        if int(body.get("confirmations") or 0) > 0 and body.get("blockheight"):
            return _Found(TxState.CONFIRMED, int(body["blockheight"]), str(body.get("blockhash") or ""))
        return _Found(TxState.MEMPOOL)

    def _block_hash(self, height: int) -> str | None:
        response = self._read(WOC_BLOCK_HEADER.format(height=height))
        return None if response is None else str(_json(response).get("hash") or "") or None

    # -- events ------------------------------------------------------------------------------------

    def watch(self, txid: str, vout: int | None = None, script_sha256: str | None = None) -> None:
        with self._journal.write() as conn:
            if vout is None:
                conn.execute("INSERT OR IGNORE INTO watched_txs (txid) VALUES (?)", (txid,))
                return
            conn.execute("INSERT OR IGNORE INTO watched_outputs (txid, vout) VALUES (?, ?)", (txid, vout))
            if script_sha256 is not None:
                conn.execute("INSERT OR REPLACE INTO watched_scripts VALUES (?, ?, ?)", (txid, vout, script_sha256))

    def events_since(self, cursor: Cursor = START, limit: int = 1000) -> tuple[list[ChainEvent], Cursor]:
        self.poll()
        with self._journal.read() as conn:
            return _eventlog.read(conn, self._journal.id, cursor, limit)

    def poll(self) -> None:
        """Ask the network what changed for the watched transactions and outputs; journal it as events."""
        with self._journal.read() as conn:
            seen = _seen_blocks(conn)
            unconfirmed = [r[0] for r in conn.execute("SELECT txid FROM watched_txs WHERE block_height IS NULL")]
            open_outputs = conn.execute("SELECT o.txid, o.vout, s.script_sha256 FROM watched_outputs o LEFT JOIN "
                                        "watched_scripts s USING (txid, vout) WHERE o.spender IS NULL").fetchall()
        tip = self.tip_height()
        if tip != self._tip:
            self._tip, self._tip_moved_at = tip, time.monotonic()
        removed = []
        for height in sorted(seen, reverse=True):  # walk down to the last height whose block did not change
            if height <= tip and self._block_hash(height) == seen[height]:
                break
            removed.append(height)
        start = (min(removed) if removed else max(seen) + 1) if seen else tip  # the first poll starts at the tip
        new: list[tuple[int, str]] = []
        for height in range(start, min(tip, start + MAX_BLOCKS_PER_POLL - 1) + 1):
            if (block_hash := self._block_hash(height)) is None:  # not indexed yet: the next poll continues
                break
            new.append((height, block_hash))
        spenders = self._spenders(open_outputs)
        with self._journal.read() as conn:  # transactions confirmed in removed blocks need another look
            moved = [r[0] for h in removed for r in conn.execute(
                "SELECT txid FROM watched_txs WHERE block_height = ?", (h,))]
        if time.monotonic() - self._tip_moved_at >= self._recheck_seconds and not new:
            unconfirmed = []  # no block for a while: none of them can have confirmed since the last look
        found = {txid: self._find(txid) for txid in {*unconfirmed, *moved, *(s.txid for s in spenders.values())}}
        with self._journal.write() as conn:
            now = _seen_blocks(conn)
            if now != seen:  # another process polled meanwhile and journaled the same news
                return
            _journal_poll(conn, seen, removed, new, spenders, found)

    def _spenders(self, outputs: list[tuple[str, int, str | None]]) -> dict[tuple[str, int], Spender]:
        """Who spent which of `outputs`: for outputs sharing a script, only those missing from that script's
        unspent outputs are asked about (the answer for the rest is already "nobody")."""
        by_script: dict[str | None, list[tuple[str, int]]] = {}
        for txid, vout, script_sha256 in outputs:
            by_script.setdefault(script_sha256, []).append((txid, vout))
        asked: list[tuple[str, int]] = []
        for script_sha256, group in by_script.items():
            if script_sha256 is None or len(group) == 1:
                asked += group
                continue
            unspent = {(u.txid, u.vout) for u in self._unspent(_script_unspent_path(bytes.fromhex(script_sha256)),
                                                                Script())}
            asked += [outpoint for outpoint in group if outpoint not in unspent]
        return {outpoint: s for outpoint in asked if (s := self.spender_of(*outpoint)) is not None}


def _script_unspent_path(script_sha256: bytes) -> str:
    """The unspent outputs of a script, by WhatsOnChain's (Electrum-style) script hash: its SHA-256 reversed."""
    return WOC_SCRIPT_UNSPENT.format(script_hash=script_sha256[::-1].hex())


def woc_root(woc_url: str | None, network: str) -> str:
    """WhatsOnChain's API root for `network`: a bare host gets ``/v1/bsv/<net>``, a URL with a path stays."""
    url = (woc_url or WOC_HOST).rstrip("/")
    return url + WOC_ROOT.format(network=network) if not urlsplit(url).path else url


def _seen_blocks(conn: sqlite3.Connection) -> dict[int, str]:
    """The journal's newest block hashes by height (the last REMEMBERED_BLOCKS)."""
    return dict(conn.execute("SELECT height, hash FROM seen_blocks ORDER BY height DESC LIMIT ?",
                             (REMEMBERED_BLOCKS,)).fetchall())


def _journal_poll(conn: sqlite3.Connection, seen: dict[int, str], removed: list[int], new: list[tuple[int, str]],
                  spenders: dict[tuple[str, int], Spender], found: dict[str, _Found]) -> None:
    """Turn one poll's answers into journal rows and events: removed blocks, new spenders, then blocks by height."""
    for height in removed:
        txids = tuple(r[0] for r in conn.execute("SELECT txid FROM watched_txs WHERE block_height = ? ORDER BY txid",
                                                 (height,)))
        conn.execute("UPDATE watched_txs SET block_height = NULL WHERE block_height = ?", (height,))
        conn.execute("DELETE FROM seen_blocks WHERE height = ?", (height,))
        _eventlog.append(conn, BlockRemoved(height, seen[height], txids))
    for (txid, vout), spender in spenders.items():
        if conn.execute("UPDATE watched_outputs SET spender = ? WHERE txid = ? AND vout = ? AND spender IS NULL",
                        (spender.txid, txid, vout)).rowcount:
            conn.execute("INSERT OR IGNORE INTO watched_txs (txid) VALUES (?)", (spender.txid,))
            _eventlog.append(conn, TransactionAccepted(spender.txid))
    first = not seen
    blocks = dict(new)
    kept = [h for h in seen if h not in removed]
    horizon = max(blocks) if blocks else max(kept, default=-1)  # the highest height reported after this poll
    by_height: dict[int, list[str]] = {}
    for txid, where in found.items():  # a confirmation above the horizon waits for its height's turn
        journaled = conn.execute("SELECT block_height FROM watched_txs WHERE txid = ?", (txid,)).fetchone()
        if journaled is None or journaled[0] is not None:  # another poller journaled it already
            continue
        if where.height is not None and where.height <= horizon:
            by_height.setdefault(where.height, []).append(txid)
            blocks.setdefault(where.height, where.block_hash or "")
    new_heights = {height for height, _ in new}
    for height in sorted(blocks):
        txids = tuple(sorted(by_height.get(height, ())))
        conn.executemany("UPDATE watched_txs SET block_height = ? WHERE txid = ?", [(height, t) for t in txids])
        if height in new_heights:
            conn.execute("INSERT OR REPLACE INTO seen_blocks VALUES (?, ?)", (height, blocks[height]))
            if first and not txids:  # the first poll only marks where the journal starts
                continue
        _eventlog.append(conn, BlockMined(height, blocks[height], txids))
    conn.execute("DELETE FROM seen_blocks WHERE height <= (SELECT max(height) FROM seen_blocks) - ?",
                 (REMEMBERED_BLOCKS,))


def _extended_format(tx: Transaction) -> bytes:
    """BRC-30 Extended Format when every input carries its source value and script, raw bytes otherwise."""
    if any(i.satoshis is None or i.locking_script is None for i in tx.inputs):
        return bytes(tx.serialize())
    out = bytearray(tx.version.to_bytes(4, "little") + EF_MARKER + unsigned_to_varint(len(tx.inputs)))
    for i in tx.inputs:
        unlocking, locking = i.unlocking_script.serialize(), i.locking_script.serialize()
        out += bytes.fromhex(i.source_txid)[::-1] + i.source_output_index.to_bytes(4, "little")
        out += unsigned_to_varint(len(unlocking)) + unlocking + i.sequence.to_bytes(4, "little")
        out += i.satoshis.to_bytes(8, "little") + unsigned_to_varint(len(locking)) + locking
    out += unsigned_to_varint(len(tx.outputs)) + b"".join(o.serialize() for o in tx.outputs)
    return bytes(out + tx.locktime.to_bytes(4, "little"))


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def _arc_problem(body: dict[str, Any], status: int) -> str:
    """ARC's RFC 7807 error body in one line: title, detail and extra information."""
    parts = [str(body[k]) for k in ("title", "detail", "extraInfo") if body.get(k)]
    return f"ARC {status}: " + (": ".join(parts) if parts else "no detail given")
