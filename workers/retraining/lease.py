"""The retraining lease: one run at a time across threads, processes and hosts.

The lease is a row of ``watcher_state``, the service's small key-value table (beside the watcher's cursors).
A second run while one holds it is skipped; a crashed holder stops renewing, and its lease may be taken once
it expired, or at once when its process on this host is gone.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from marketplace.schema import WatcherState
from workers.errors import RetrainError

log = logging.getLogger(__name__)

LEASE_KEY = "retrain_lease"
LEASE_SECONDS = 600.0  # a crashed holder blocks new runs at most this long
RENEWALS_PER_LEASE = 4  # a live run renews its lease this often per lease period


def _pid_namespace() -> str | None:
    """Which set of pids ours is: containers sharing a host name still each have their own."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _alive(holder: dict[str, Any]) -> bool:
    """False only when the holder was a process on this host, among our pids, that no longer exists: a
    SIGKILLed worker's lease is then free at once instead of after its expiry. A holder elsewhere, or a
    pid now reused by another process, counts as alive and waits for the expiry (the safe side)."""
    if (holder.get("host"), holder.get("pids")) != (socket.gethostname(), _pid_namespace()) \
            or not isinstance(holder.get("pid"), int):
        return True
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class Lease:
    """A lease named `key`, a row of ``watcher_state``: one holder at a time across threads, processes and hosts.

    Taking, renewing and releasing are each one conditional UPDATE that swaps the exact value last read
    (compare-and-swap), which both SQLite (one writer at a time) and PostgreSQL (the row lock, then the
    WHERE re-checked on the committed row) make atomic. The value is "" when free, else JSON naming the
    holder and when the lease expires (the holders' clocks; skew is small next to `seconds`). A holder
    renews from a background thread while it lives (`keep_alive`); one that crashes simply stops, and its
    lease may be taken once it has expired, or at once if its process on this host is gone (`_alive`).
    """

    def __init__(self, engine: Engine, key: str = LEASE_KEY, seconds: float = LEASE_SECONDS) -> None:
        self.engine, self.key, self.seconds = engine, key, seconds
        self.token = uuid.uuid4().hex
        self._value: str | None = None  # what we last wrote, while we hold the lease
        self._mutex = threading.Lock()  # the heartbeat and the run renew through the same value
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        """Take the lease if it is free or expired; False when someone else holds it."""
        current = self._ensure_row()
        holder = json.loads(current) if current else None
        if holder and float(holder.get("expires", 0)) > time.time() and _alive(holder):
            return False
        with self._mutex:
            return self._swap(current, self._fresh())

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lease and until when (epoch seconds), or None when it is free."""
        current = self.current()
        return json.loads(current) if current else None

    def current(self) -> str | None:
        with self.engine.connect() as conn:
            return conn.scalar(select(WatcherState.value).where(WatcherState.key == self.key))

    def renew(self) -> None:
        """Push the expiry on; raises RetrainError if the lease was lost (it expired and was taken)."""
        with self._mutex:
            if self._value is None or self._lost.is_set() or not self._swap(self._value, self._fresh()):
                self._lost.set()
                raise RetrainError(f"the {self.key} lease was lost: another run may have taken over")

    def check(self) -> None:
        """Raise RetrainError if the heartbeat found the lease lost."""
        if self._lost.is_set():
            raise RetrainError(f"the {self.key} lease was lost: another run may have taken over")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._mutex:
            if self._value is not None:
                self._swap(self._value, "")  # a lost lease is not ours to free: the swap then changes nothing
            self._value = None

    def keep_alive(self) -> None:
        """Renew in a daemon thread every `seconds` / `RENEWALS_PER_LEASE` until `release`."""
        self._thread = threading.Thread(target=self._beat, name=f"{self.key}-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.seconds / RENEWALS_PER_LEASE):
            try:
                self.renew()
            except RetrainError:
                log.error("the %s lease was lost; the run stops at its next stage", self.key)
                return
            except Exception:  # a database hiccup: the lease still has time left, try again next beat
                log.warning("could not renew the %s lease", self.key, exc_info=True)

    def _fresh(self) -> str:
        return json.dumps({"holder": self.token, "expires": time.time() + self.seconds,
                           "host": socket.gethostname(), "pid": os.getpid(), "pids": _pid_namespace()})

    def _swap(self, old: str, new: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(update(WatcherState).where(WatcherState.key == self.key, WatcherState.value == old)
                                  .values(value=new))
        swapped = result.rowcount == 1
        if swapped:
            self._value = new or None
        return swapped

    def _ensure_row(self) -> str:
        """The lease's value, its row created ("" = free) if there was none."""
        # Read and insert in separate transactions: a SQLite read transaction cannot always turn into a writer.
        current = self.current()
        if current is not None:
            return current
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(WatcherState).values(key=self.key, value=""))
            return ""
        except IntegrityError:  # another process created it first
            return self.current() or ""


__all__ = ["LEASE_KEY", "LEASE_SECONDS", "Lease"]
