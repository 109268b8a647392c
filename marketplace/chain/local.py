"""LocalChain: a development chain in one SQLite file that validates transactions like a node.

Every input of every transaction runs through bsv-sdk's interpreter (``contracts.interpreter.
validate_once``: a claim the service of this same process just validated, byte for byte, is not run twice)
against the output it spends, found in the file's UTXO set or mempool. The policy
follows a node's: version-1 transactions only, first-seen wins on double spends, a minimum fee rate
in sat/kB, and a limit on unconfirmed ancestors ("too-long-mempool-chain") so code written against
it copes with the network's. Blocks are mined on demand (``mine``) or on an interval from a thread
(``mine_every``); ``faucet`` creates coins out of nothing so a development wallet can be funded. A chain
opened for a network (``network="testnet"`` or ``"mainnet"``, the service's ``BOUNTY_NETWORK``) has its faucet
refuse the other network's addresses, as a real faucet would; opened without one, it pays either.

Reorgs (``rollback``): the removed blocks' transactions go back to the mempool; none of them can
conflict with anything then, since the remaining chain is a prefix of the one they were valid on.
Faucet payments go back too (unlike a real coinbase, which a reorg destroys), so a development
wallet keeps its funds. The unconfirmed-ancestor limit applies to new broadcasts only.
A rollback may bring the competing chain's transactions (``replacement``): each is admitted first,
and whatever it double-spends in the mempool is dropped together with its descendants
(``TransactionDropped`` events), as a node does when a competing block arrives. Replacements go to
the mempool; ``mine`` afterwards to make the new chain longer.

Several processes may use one file at once: validation runs outside any lock, then a short
``BEGIN IMMEDIATE`` transaction re-checks the inputs and records the transaction, so the first to
commit wins and nothing is lost.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from bsv import P2PKH, Script, Transaction, TransactionInput, TransactionOutput
from bsv.utils import Reader

from contracts.errors import ScriptError
from contracts.interpreter import TX_VERSION, validate_once
from contracts.transactions import DEFAULT_FEE_RATE, Utxo, address_pkh
from marketplace.chain import _eventlog
from marketplace.chain._sqlite import Database
from marketplace.chain.base import (
    NETWORK_NAMES,
    START,
    BlockMined,
    BlockRemoved,
    BroadcastResult,
    Chain,
    ChainEvent,
    Cursor,
    Network,
    Spender,
    TransactionAccepted,
    TransactionDropped,
    TxState,
    TxStatus,
    address_network,
)
from marketplace.chain.errors import ChainError, ChainUnavailable, MempoolChainTooLong, TransactionRejected

log = logging.getLogger(__name__)

DEFAULT_MAX_UNCONFIRMED_ANCESTORS = 1000
MAX_TX_BYTES = 10_000_000  # node policy
MAX_SATOSHIS = 21_000_000 * 100_000_000
NULL_TXID = "00" * 32
NULL_VOUT = 0xFFFFFFFF  # a coinbase-style input: spends nothing

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS blocks (height INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE, mined_at REAL NOT NULL)",
    # id is the arrival order: a parent always arrives before its children, so mining in id order is valid
    """CREATE TABLE IF NOT EXISTS transactions (
        id INTEGER PRIMARY KEY, txid TEXT NOT NULL UNIQUE, raw BLOB NOT NULL, fee INTEGER NOT NULL,
        faucet INTEGER NOT NULL DEFAULT 0, block_height INTEGER)""",
    "CREATE INDEX IF NOT EXISTS transactions_block ON transactions (block_height)",
    """CREATE TABLE IF NOT EXISTS outputs (
        txid TEXT NOT NULL, vout INTEGER NOT NULL, satoshis INTEGER NOT NULL, script BLOB NOT NULL,
        script_hash BLOB NOT NULL, spent_by TEXT, spent_vin INTEGER, PRIMARY KEY (txid, vout))""",
    "CREATE INDEX IF NOT EXISTS outputs_script ON outputs (script_hash)",
    "CREATE INDEX IF NOT EXISTS outputs_spender ON outputs (spent_by)",
    _eventlog.SCHEMA,
]


@dataclass(frozen=True)
class ChainStats:
    tip_height: int
    mempool_size: int
    utxo_count: int


@dataclass(frozen=True)
class _Source:
    satoshis: int
    script: bytes


@dataclass(frozen=True)
class _Candidate:
    """A transaction that passed every check that does not depend on what else is spent."""

    tx: Transaction
    txid: str
    raw: bytes
    fee: int
    outpoints: tuple[tuple[str, int], ...]


class LocalChain(Chain):
    """The embedded chain. Safe to share between threads, and between processes through the file."""

    def __init__(self, path: Path | str, *, min_fee_rate: int = DEFAULT_FEE_RATE,
                 max_unconfirmed_ancestors: int = DEFAULT_MAX_UNCONFIRMED_ANCESTORS,
                 network: Network | None = None) -> None:
        if network is not None and network not in NETWORK_NAMES:
            raise ChainError(f"unknown network {network!r}: use one of {', '.join(NETWORK_NAMES)}")
        self.path = Path(path)
        self.network = network  # None: the faucet pays addresses of either network
        self.min_fee_rate = min_fee_rate
        self.max_unconfirmed_ancestors = max_unconfirmed_ancestors
        self._db = Database(self.path, "local-chain", SCHEMA)
        self._miners: list[BlockMiner] = []
        with self._db.write() as conn:
            genesis = hashlib.sha256(f"digit-bounty local genesis {self._db.id}".encode()).hexdigest()
            conn.execute("INSERT OR IGNORE INTO blocks VALUES (0, ?, ?)", (genesis, time.time()))

    def __repr__(self) -> str:
        return f"LocalChain({str(self.path)!r})"

    # -- broadcasting ------------------------------------------------------------------------------

    def broadcast(self, tx: Transaction | bytes) -> BroadcastResult:
        raw = tx if isinstance(tx, bytes) else _serialize(tx)
        parsed = _parse(raw)
        if (known := self.status(parsed.txid())).state is not TxState.UNKNOWN:
            return BroadcastResult(known.txid, known.state, "already known")
        candidate = self._prepare(parsed, raw)
        with self._db.read() as conn:  # refuse a known double spend before paying for script validation
            self._check_unspent(conn, candidate)
        self._validate_scripts(candidate)
        with self._db.write() as conn:
            if (known := _status(conn, candidate.txid)).state is not TxState.UNKNOWN:
                return BroadcastResult(candidate.txid, known.state, "already known")
            self._check_unspent(conn, candidate)
            self._check_ancestors(conn, candidate)
            _insert(conn, candidate)
        log.info("accepted %s (%d bytes, fee %d)", candidate.txid, len(candidate.raw), candidate.fee)
        return BroadcastResult(candidate.txid, TxState.MEMPOOL, "accepted")

    def _prepare(self, parsed: Transaction, raw: bytes,
                 pending: dict[tuple[str, int], _Source] | None = None) -> _Candidate:
        """Check a parsed transaction against everything but its scripts and what is already spent.

        `pending` holds outputs of transactions being admitted in the same step (a rollback's replacement).
        """
        txid = parsed.txid()
        outpoints = tuple((i.source_txid, i.source_output_index) for i in parsed.inputs)
        _check_form(parsed, raw, outpoints, txid)
        with self._db.read() as conn:
            sources = _sources(conn, outpoints)
        sources.update({o: s for o, s in (pending or {}).items() if o in outpoints})
        missing = [o for o in outpoints if o not in sources]
        if missing:
            raise TransactionRejected(f"missing inputs: {_outpoint(missing[0])} is not in the UTXO set or the mempool",
                                      txid)
        for tx_input, outpoint in zip(parsed.inputs, outpoints, strict=True):
            tx_input.satoshis = sources[outpoint].satoshis
            tx_input.locking_script = Script(sources[outpoint].script)
        value_in = sum(sources[o].satoshis for o in outpoints)
        value_out = sum(o.satoshis for o in parsed.outputs)
        if value_out > value_in:
            raise TransactionRejected(f"outputs ({value_out} sats) exceed inputs ({value_in} sats)", txid)
        fee, needed = value_in - value_out, -(-len(raw) * self.min_fee_rate // 1000)
        if fee < needed:
            raise TransactionRejected(f"fee of {fee} sats is below the minimum of {needed} sats "
                                      f"({self.min_fee_rate} sat/kB for {len(raw)} bytes)", txid)
        return _Candidate(parsed, txid, raw, fee, outpoints)

    @staticmethod
    def _validate_scripts(candidate: _Candidate) -> None:
        for index in range(len(candidate.tx.inputs)):
            try:
                validate_once(candidate.tx, index)
            except ScriptError as exc:
                log.info("rejected %s: input %d fails its script: %s", candidate.txid, index, exc.reason)
                raise TransactionRejected(f"input {index} fails its script: {exc.reason}", candidate.txid) from None

    @staticmethod
    def _check_unspent(conn: sqlite3.Connection, candidate: _Candidate) -> None:
        """First seen wins: an output already spent by another transaction cannot be spent again."""
        for outpoint in candidate.outpoints:
            row = conn.execute("SELECT spent_by FROM outputs WHERE txid = ? AND vout = ?", outpoint).fetchone()
            if row is None:  # dropped by a reorg since _prepare looked
                raise TransactionRejected(f"missing inputs: {_outpoint(outpoint)} is no longer in the mempool",
                                          candidate.txid)
            if row[0] is not None and row[0] != candidate.txid:
                raise TransactionRejected(f"double spend of {_outpoint(outpoint)}, already spent by {row[0]}",
                                          candidate.txid)

    def _check_ancestors(self, conn: sqlite3.Connection, candidate: _Candidate) -> None:
        parents = sorted({txid for txid, _vout in candidate.outpoints})
        count = _unconfirmed_ancestors(conn, parents)
        if count > self.max_unconfirmed_ancestors:
            raise MempoolChainTooLong(f"too-long-mempool-chain: {count} unconfirmed ancestors, more than the "
                                      f"{self.max_unconfirmed_ancestors} allowed; retry after the next block",
                                      candidate.txid)

    # -- reading -----------------------------------------------------------------------------------

    def get_transaction(self, txid: str) -> Transaction | None:
        with self._db.read() as conn:
            row = conn.execute("SELECT raw FROM transactions WHERE txid = ?", (txid,)).fetchone()
        return None if row is None else Transaction.from_reader(Reader(bytes(row[0])))

    def status(self, txid: str) -> TxStatus:
        with self._db.read() as conn:
            return _status(conn, txid)

    def spender_of(self, txid: str, vout: int) -> Spender | None:
        with self._db.read() as conn:
            row = conn.execute("SELECT spent_by, spent_vin FROM outputs WHERE txid = ? AND vout = ?",
                               (txid, vout)).fetchone()
        return None if row is None or row[0] is None else Spender(row[0], row[1])

    def tip_height(self) -> int:
        with self._db.read() as conn:
            return _tip(conn)[0]

    def block_hash(self, height: int) -> str | None:
        with self._db.read() as conn:
            row = conn.execute("SELECT hash FROM blocks WHERE height = ?", (height,)).fetchone()
        return None if row is None else str(row[0])

    def confirmations(self, txid: str) -> int:
        with self._db.read() as conn:
            status = _status(conn, txid)
            return 0 if status.block_height is None else _tip(conn)[0] - status.block_height + 1

    def events_since(self, cursor: Cursor = START, limit: int = 1000) -> tuple[list[ChainEvent], Cursor]:
        with self._db.read() as conn:
            return _eventlog.read(conn, self._db.id, cursor, limit)

    def watch(self, txid: str, vout: int | None = None, script_sha256: str | None = None) -> None:
        """Nothing to do: every transaction this chain accepts is an event already."""

    def utxos_for_address(self, address: str) -> list[Utxo]:
        return self.utxos_for_script(P2PKH().lock(address_pkh(address)).serialize())

    def utxos_for_script(self, script: bytes) -> list[Utxo]:
        with self._db.read() as conn:
            rows = conn.execute("SELECT txid, vout, satoshis, script FROM outputs WHERE script_hash = ? "
                                "AND spent_by IS NULL ORDER BY rowid", (hashlib.sha256(script).digest(),)).fetchall()
        return [Utxo(txid, vout, satoshis, Script(bytes(found))) for txid, vout, satoshis, found in rows
                if bytes(found) == script]

    def stats(self) -> ChainStats:
        with self._db.read() as conn:
            mempool = conn.execute("SELECT count(*) FROM transactions WHERE block_height IS NULL").fetchone()[0]
            utxos = conn.execute("SELECT count(*) FROM outputs WHERE spent_by IS NULL").fetchone()[0]
            return ChainStats(_tip(conn)[0], mempool, utxos)

    # -- development controls ----------------------------------------------------------------------

    def faucet(self, address: str, amount: int) -> str:
        """Pay `amount` sats to a P2PKH address out of nothing (a coinbase-like transaction, not validated).
        A chain opened for a network refuses an address of the other one."""
        if not 0 < amount <= MAX_SATOSHIS:
            raise ChainError(f"a faucet payment must be 1..{MAX_SATOSHIS} sats, not {amount}")
        if self.network is not None and (theirs := address_network(address)) != self.network:
            raise ChainError(f"{address} is a {theirs} address and this dev chain runs on {self.network} "
                             f"(BOUNTY_NETWORK): the faucet pays {self.network} addresses only")
        marker = os.urandom(16)  # makes every faucet transaction's id unique
        tx = Transaction([TransactionInput(source_txid=NULL_TXID, source_output_index=NULL_VOUT,
                                           unlocking_script=Script(bytes([len(marker)]) + marker))],
                         [TransactionOutput(P2PKH().lock(address_pkh(address)), amount)], version=TX_VERSION)
        candidate = _Candidate(tx, tx.txid(), tx.serialize(), 0, ())
        with self._db.write() as conn:
            _insert(conn, candidate, faucet=True)
        log.info("faucet paid %d sats to %s in %s", amount, address, candidate.txid)
        return candidate.txid

    def mine(self, n: int = 1) -> list[BlockMined]:
        """Mine `n` blocks; the first takes the whole mempool in arrival order, the others are empty."""
        if n < 1:
            raise ChainError(f"cannot mine {n} blocks")
        mined = []
        with self._db.write() as conn:
            for _ in range(n):
                height, previous = _tip(conn)
                txids = tuple(r[0] for r in conn.execute(
                    "SELECT txid FROM transactions WHERE block_height IS NULL ORDER BY id"))
                header = f"{previous}{height + 1}{''.join(txids)}".encode() + os.urandom(8)
                block = BlockMined(height + 1, hashlib.sha256(hashlib.sha256(header).digest()).digest()[::-1].hex(),
                                   txids)
                conn.execute("INSERT INTO blocks VALUES (?, ?, ?)", (block.height, block.block_hash, time.time()))
                conn.execute("UPDATE transactions SET block_height = ? WHERE block_height IS NULL", (block.height,))
                _eventlog.append(conn, block)
                mined.append(block)
        for block in mined:
            log.info("mined block %d with %d transactions", block.height, len(block.txids))
        return mined

    def mine_every(self, interval: float) -> BlockMiner:
        """Mine a block every `interval` seconds from a background thread until ``stop()`` or ``close()``."""
        miner = BlockMiner(self, interval)
        self._miners.append(miner)
        return miner

    def rollback(self, n: int = 1, replacement: Sequence[Transaction | bytes] = ()) -> list[BlockRemoved]:
        """Remove the last `n` blocks (their transactions return to the mempool), then admit the competing
        chain's `replacement` transactions, dropping whatever in the mempool they double-spend."""
        pending: dict[tuple[str, int], _Source] = {}
        candidates = []
        for tx in replacement:  # validate before taking the lock: the scripts are the slow part
            raw = tx if isinstance(tx, bytes) else _serialize(tx)
            candidate = self._prepare(_parse(raw), raw, pending)
            self._validate_scripts(candidate)
            candidates.append(candidate)
            pending.update({(candidate.txid, vout): _Source(out.satoshis, out.locking_script.serialize())
                            for vout, out in enumerate(candidate.tx.outputs)})
        removed = []
        with self._db.write() as conn:
            tip = _tip(conn)[0]
            if not 0 < n <= tip:
                raise ChainError(f"cannot roll back {n} blocks of a chain {tip} blocks high (genesis stays)")
            for height in range(tip, tip - n, -1):
                block_hash = conn.execute("SELECT hash FROM blocks WHERE height = ?", (height,)).fetchone()[0]
                txids = tuple(r[0] for r in conn.execute(
                    "SELECT txid FROM transactions WHERE block_height = ? ORDER BY id", (height,)))
                conn.execute("UPDATE transactions SET block_height = NULL WHERE block_height = ?", (height,))
                conn.execute("DELETE FROM blocks WHERE height = ?", (height,))
                event = BlockRemoved(height, block_hash, txids)
                _eventlog.append(conn, event)
                removed.append(event)
            for candidate in candidates:
                if _status(conn, candidate.txid).state is not TxState.UNKNOWN:
                    continue
                _evict_conflicts(conn, candidate)
                _insert(conn, candidate)
        log.info("rolled back %d blocks to height %d, %d replacement transactions", n, tip - n, len(candidates))
        return removed

    def close(self) -> None:
        for miner in self._miners:
            miner.stop()
        self._miners.clear()
        self._db.close()

    def __enter__(self) -> LocalChain:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class BlockMiner:
    """A background thread mining one block of a LocalChain every `interval` seconds."""

    def __init__(self, chain: LocalChain, interval: float) -> None:
        if interval <= 0:
            raise ChainError(f"a mining interval must be positive, not {interval}")
        self.chain, self.interval = chain, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="local-chain-miner", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.chain.mine()
            except ChainUnavailable as exc:  # another process held the file: try again next tick
                log.warning("block not mined: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# -- helpers working inside a transaction -----------------------------------------------------------

def _outpoint(outpoint: tuple[str, int]) -> str:
    return f"{outpoint[0]}:{outpoint[1]}"


def _serialize(tx: Transaction) -> bytes:
    try:
        return bytes(tx.serialize())
    except Exception as exc:  # an unsigned input has no script, a bad txid does not encode
        raise TransactionRejected(f"malformed transaction: cannot be serialised ({exc})") from None


def _parse(raw: bytes) -> Transaction:
    reader = Reader(raw)
    try:
        tx = Transaction.from_reader(reader)
    except Exception as exc:  # the SDK raises ValueError, IndexError, struct.error... on garbage
        raise TransactionRejected(f"malformed transaction: {exc or type(exc).__name__}") from None
    if reader.tell() != len(raw):
        raise TransactionRejected(f"malformed transaction: {len(raw) - reader.tell()} bytes after the end")
    if tx.serialize() != raw:
        raise TransactionRejected("malformed transaction: not canonically encoded")
    return tx


def _check_form(tx: Transaction, raw: bytes, outpoints: Sequence[tuple[str, int]], txid: str) -> None:
    problem = None
    if tx.version != TX_VERSION:
        problem = f"version {tx.version} transactions are not accepted, only version {TX_VERSION}"
    elif not tx.inputs or not tx.outputs:
        problem = "malformed transaction: no inputs or no outputs"
    elif len(raw) > MAX_TX_BYTES:
        problem = f"transaction of {len(raw)} bytes is over the {MAX_TX_BYTES}-byte limit"
    elif len(set(outpoints)) != len(outpoints):
        problem = "malformed transaction: spends the same output twice"
    elif any(o == (NULL_TXID, NULL_VOUT) for o in outpoints):
        problem = "coinbase-like transactions cannot be broadcast (use the faucet)"
    elif sum(o.satoshis for o in tx.outputs) > MAX_SATOSHIS:
        problem = "malformed transaction: output values out of range"
    if problem:
        raise TransactionRejected(problem, txid)


def _sources(conn: sqlite3.Connection, outpoints: Iterable[tuple[str, int]]) -> dict[tuple[str, int], _Source]:
    found = {}
    for outpoint in outpoints:
        row = conn.execute("SELECT satoshis, script FROM outputs WHERE txid = ? AND vout = ?", outpoint).fetchone()
        if row is not None:
            found[outpoint] = _Source(row[0], bytes(row[1]))
    return found


def _status(conn: sqlite3.Connection, txid: str) -> TxStatus:
    row = conn.execute("SELECT block_height FROM transactions WHERE txid = ?", (txid,)).fetchone()
    if row is None:
        return TxStatus(txid, TxState.UNKNOWN)
    return TxStatus(txid, TxState.MEMPOOL) if row[0] is None else TxStatus(txid, TxState.CONFIRMED, row[0])


def _tip(conn: sqlite3.Connection) -> tuple[int, str]:
    height, block_hash = conn.execute("SELECT height, hash FROM blocks ORDER BY height DESC LIMIT 1").fetchone()
    return int(height), str(block_hash)


def _unconfirmed_ancestors(conn: sqlite3.Connection, parents: Sequence[str]) -> int:
    """How many distinct mempool transactions a child of `parents` would descend from."""
    seeds = ",".join("?" * len(parents))
    query = f"""
        WITH RECURSIVE ancestors(txid) AS (
            SELECT txid FROM transactions WHERE txid IN ({seeds}) AND block_height IS NULL
            UNION
            SELECT o.txid FROM ancestors a JOIN outputs o ON o.spent_by = a.txid
            JOIN transactions t ON t.txid = o.txid WHERE t.block_height IS NULL
        ) SELECT count(*) FROM ancestors"""
    return int(conn.execute(query, parents).fetchone()[0])


def _insert(conn: sqlite3.Connection, candidate: _Candidate, faucet: bool = False) -> None:
    conn.execute("INSERT INTO transactions (txid, raw, fee, faucet) VALUES (?, ?, ?, ?)",
                 (candidate.txid, candidate.raw, candidate.fee, int(faucet)))
    for vin, outpoint in enumerate(candidate.outpoints):
        conn.execute("UPDATE outputs SET spent_by = ?, spent_vin = ? WHERE txid = ? AND vout = ?",
                     (candidate.txid, vin, *outpoint))
    for vout, output in enumerate(candidate.tx.outputs):
        script = output.locking_script.serialize()
        conn.execute("INSERT INTO outputs (txid, vout, satoshis, script, script_hash) VALUES (?, ?, ?, ?, ?)",
                     (candidate.txid, vout, output.satoshis, script, hashlib.sha256(script).digest()))
    _eventlog.append(conn, TransactionAccepted(candidate.txid))


def _evict_conflicts(conn: sqlite3.Connection, candidate: _Candidate) -> None:
    """Make room for a transaction of the competing chain: drop mempool spenders of its inputs."""
    for outpoint in candidate.outpoints:
        row = conn.execute("SELECT spent_by FROM outputs WHERE txid = ? AND vout = ?", outpoint).fetchone()
        if row is None:
            raise TransactionRejected(f"missing inputs: {_outpoint(outpoint)} is not in the UTXO set or the mempool",
                                      candidate.txid)
        spender = row[0]
        if spender is None:
            continue
        if _status(conn, spender).state is TxState.CONFIRMED:
            raise TransactionRejected(f"double spend of {_outpoint(outpoint)}, already spent by {spender} "
                                      "in a block that stays", candidate.txid)
        _drop(conn, spender, f"double spend of {_outpoint(outpoint)} lost to {candidate.txid} after a reorg")


def _drop(conn: sqlite3.Connection, txid: str, reason: str) -> None:
    """Remove a mempool transaction and every descendant, children first, freeing the outputs they spent."""
    family = [r[0] for r in conn.execute("""
        WITH RECURSIVE family(txid) AS (
            SELECT ? UNION
            SELECT o.spent_by FROM family f JOIN outputs o ON o.txid = f.txid WHERE o.spent_by IS NOT NULL
        ) SELECT t.txid FROM family f JOIN transactions t ON t.txid = f.txid ORDER BY t.id DESC""", (txid,))]
    for member in family:
        conn.execute("UPDATE outputs SET spent_by = NULL, spent_vin = NULL WHERE spent_by = ?", (member,))
        conn.execute("DELETE FROM outputs WHERE txid = ?", (member,))
        conn.execute("DELETE FROM transactions WHERE txid = ?", (member,))
        why = reason if member == txid else f"spends an output of dropped {txid} ({reason})"
        _eventlog.append(conn, TransactionDropped(member, why))
        log.info("dropped %s: %s", member, why)
