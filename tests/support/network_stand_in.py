"""A stand-in for ARC and WhatsOnChain on 127.0.0.1, backed by a real LocalChain.

It speaks the subset of both REST APIs that ``marketplace.chain.network`` uses (ARC ``POST /v1/tx``;
WhatsOnChain chain info, block header by height, tx hex, tx info, spent output, unspent outputs by
address and by script hash) and can be told to misbehave: answer N requests with an HTTP error
(5xx, 429), answer slowly, or refuse the next broadcast. Every request is recorded for assertions.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bsv import P2PKH
from bsv.utils import Reader, unsigned_to_varint

from marketplace.chain import LocalChain, TxState
from marketplace.chain.errors import TransactionRejected

EF_MARKER = bytes.fromhex("0000000000ef")
WOC_PREFIX = "/woc/v1/bsv/test"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class _Faults:
    errors: list[tuple[int, str | None]] = field(default_factory=list)  # (status, Retry-After) per request
    delays: list[float] = field(default_factory=list)
    refusal: tuple[int, dict[str, Any]] | None = None


class NetworkStandIn:
    def __init__(self, chain: LocalChain, api_key: str | None = None) -> None:
        self.chain, self.api_key = chain, api_key
        self.requests: list[Seen] = []
        self.scripts: dict[bytes, bytes] = {}  # sha256(script) -> script, for unspent-by-script-hash
        self._faults = _Faults()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> NetworkStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- misbehaviour ------------------------------------------------------------------------------

    def fail_next(self, n: int, status: int = 503, retry_after: str | None = None) -> None:
        with self._lock:
            self._faults.errors += [(status, retry_after)] * n

    def delay_next(self, n: int, seconds: float) -> None:
        with self._lock:
            self._faults.delays += [seconds] * n

    def refuse_next_broadcast(self, status: int, body: dict[str, Any]) -> None:
        with self._lock:
            self._faults.refusal = (status, body)

    def _take(self) -> tuple[tuple[int, str | None] | None, float]:
        with self._lock:
            error = self._faults.errors.pop(0) if self._faults.errors else None
            delay = self._faults.delays.pop(0) if self._faults.delays else 0.0
            return error, delay

    # -- the APIs ----------------------------------------------------------------------------------

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        self.requests.append(Seen(method, path, headers, body))
        error, delay = self._take()
        time.sleep(delay)
        if error is not None:
            status, retry_after = error
            return status, ({"title": "stand-in failure"}, {"Retry-After": retry_after} if retry_after else {})
        if method == "POST" and path == "/arc/v1/tx":
            return self._arc_broadcast(headers, body)
        if method == "GET" and path.startswith(WOC_PREFIX):
            return self._woc(path.removeprefix(WOC_PREFIX))
        return 404, ({"title": "not found"}, {})

    def _arc_broadcast(self, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if self.api_key and headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, ({"title": "Unauthorized"}, {})
        with self._lock:
            refusal, self._faults.refusal = self._faults.refusal, None
        if refusal is not None:
            return refusal[0], (refusal[1], {})
        raw = _plain(bytes.fromhex(json.loads(body)["rawTx"]))
        try:
            result = self.chain.broadcast(raw)
        except TransactionRejected as exc:
            if exc.reason.startswith("double spend"):
                spender = exc.reason.rsplit(" ", 1)[-1]
                return 200, ({"txid": exc.txid, "txStatus": "DOUBLE_SPEND_ATTEMPTED", "competingTxs": [spender]}, {})
            return 461, ({"type": "https://bitcoin-sv.github.io/arc/#/errors?id=_461", "title": "Malformed transaction",
                          "status": 461, "detail": "Transaction is malformed and cannot be processed",
                          "extraInfo": exc.reason, "txid": exc.txid}, {})
        tx = self.chain.get_transaction(result.txid)
        for output in tx.outputs if tx else []:
            script = output.locking_script.serialize()
            self.scripts[hashlib.sha256(script).digest()] = script
        status = "MINED" if result.state is TxState.CONFIRMED else "SEEN_ON_NETWORK"
        return 200, ({"txid": result.txid, "txStatus": status, "extraInfo": ""}, {})

    def _woc(self, path: str) -> tuple[int, Any]:
        chain = self.chain
        if path == "/chain/info":
            tip = chain.tip_height()
            return 200, ({"chain": "test", "blocks": tip, "bestblockhash": chain.block_hash(tip)}, {})
        if m := re.fullmatch(r"/block/(\d+)/header", path):
            block_hash = chain.block_hash(int(m[1]))
            return (200, ({"hash": block_hash, "height": int(m[1])}, {})) if block_hash else (404, ("", {}))
        if m := re.fullmatch(r"/tx/(\w{64})/hex", path):
            tx = chain.get_transaction(m[1])
            return (200, (tx.hex(), {})) if tx else (404, ("", {}))
        if m := re.fullmatch(r"/tx/hash/(\w{64})", path):
            status = chain.status(m[1])
            if status.state is TxState.UNKNOWN:
                return 404, ("", {})
            height = status.block_height
            return 200, ({"txid": m[1], "blockheight": height, "confirmations": chain.confirmations(m[1]),
                          "blockhash": chain.block_hash(height) if height is not None else None}, {})
        if m := re.fullmatch(r"/tx/(\w{64})/(\d+)/spent", path):
            spender = chain.spender_of(m[1], int(m[2]))
            return (200, ({"txid": spender.txid, "vin": spender.vin}, {})) if spender else (404, ("", {}))
        if m := re.fullmatch(r"/address/(\w+)/unspent/all", path):
            return 200, ({"address": m[1], "result": self._unspent(chain.utxos_for_address(m[1])), "error": ""}, {})
        if m := re.fullmatch(r"/script/(\w{64})/unspent/all", path):
            script = self.scripts.get(bytes.fromhex(m[1])[::-1])
            utxos = chain.utxos_for_script(script) if script else []
            return 200, ({"script": m[1], "result": self._unspent(utxos), "error": ""}, {})
        return 404, ("", {})

    def _unspent(self, utxos: list[Any]) -> list[dict[str, Any]]:
        entries = []
        for u in utxos:
            status = self.chain.status(u.txid)
            entries.append({"height": status.block_height or 0, "tx_pos": u.vout, "tx_hash": u.txid,
                            "value": u.satoshis, "isSpentInMempoolTx": False, "status": status.state.value})
        return entries

    def register_address(self, address: str) -> None:
        script = P2PKH().lock(address).serialize()
        self.scripts[hashlib.sha256(script).digest()] = script


def _plain(data: bytes) -> bytes:
    """Extended Format back to the plain serialisation (the chain looks the source outputs up itself)."""
    if data[4:10] != EF_MARKER:
        return data
    reader = Reader(data[10:])
    count = reader.read_var_int_num()
    inputs = b""
    for _ in range(count):
        outpoint = reader.read(36)
        unlocking = reader.read(reader.read_var_int_num())
        sequence = reader.read(4)
        reader.read(8)
        reader.read(reader.read_var_int_num())
        inputs += outpoint + unsigned_to_varint(len(unlocking)) + unlocking + sequence
    return data[:4] + unsigned_to_varint(count) + inputs + reader.read()


def _handler(stand_in: NetworkStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, (payload, extra) = stand_in.answer(self.command, self.path, headers, body)
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (a timeout test)
                pass

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    return Handler
