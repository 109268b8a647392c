"""Retraining: accepted images make the next model, which replaces the judge of every bounty if it is no worse.

One run, top to bottom (`retrain`), recorded in a ``retrain_runs`` row (queued -> running -> succeeded,
rejected or failed; the metrics JSON grows stage by stage, so a failed run shows how far it got):

1. **lock**: a lease row in ``watcher_state`` (`Lease`). A second run while one holds it returns at once with
   status "skipped" and writes nothing. A crashed holder stops renewing; its lease expires after
   `LEASE_SECONDS`, or at once when it was a process on the same host that is gone, and the next run marks
   the crashed run failed ("abandoned").
2. **data**: MNIST's training split plus the accepted images that are not duplicates, not excluded, not held
   out and (with ``retrain_require_review``) approved, each repeated ``retrain_accepted_weight`` times. The
   10,000 MNIST test images are never trained on. The snapshot is recorded (counts, id range, a sha256 over
   the spend keys and one over the pixels and labels, the MNIST digest).
3. **train**: `model.train.train` with the accepted images appended to its training split (TensorFlow is
   imported only here). The challenger is saved under ``{home}/models/{sha[:12]}/`` with its lineage.
4. **judge**: the challenger must not be worse than the champion (`judge` says exactly how), and its script
   must agree with its reference. A challenger that fails a check is *rejected*: nothing is deployed.
5. **deploy**: the challenger is registered and every active bounty is migrated into a contract it judges,
   one owner transaction per bounty. If a migration fails the run is *failed* and no further bounty is
   migrated; the bounties already migrated stay so (each migration is complete and consistent on its own:
   balance moved, old contract retired, new one active), and the summary lists them.

A run that fails before step 5 deploys nothing. The count trigger (`maybe_retrain`) starts a run once
``retrain_after_images`` accepted images arrived since the last finished run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from contracts.errors import ScriptError
from contracts.interpreter import verify_images
from marketplace.bounties import redeploy
from marketplace.errors import BountyClosed
from marketplace.runtime import Runtime
from marketplace.schema import (
    Bounty,
    BountyStatus,
    Deployment,
    DeploymentStatus,
    ModelVersion,
    RetrainRun,
    RetrainStatus,
    RetrainTrigger,
    ReviewStatus,
    TrainingImage,
    WatcherState,
)
from marketplace.settings import Settings
from model.artifact import ModelArtifact, load_artifact
from model.config import FINETUNE, FINETUNE_FAST, TINY, TrainConfig
from model.data import Mnist, load_mnist
from model.errors import ArtifactError
from model.reference import IntegerModel, classify
from workers.errors import RetrainError

log = logging.getLogger(__name__)

LEASE_KEY = "retrain_lease"
LEASE_SECONDS = 600.0  # a crashed holder blocks new runs at most this long
RENEWALS_PER_LEASE = 4  # a live run renews its lease this often per lease period
FLOAT_SLACK = 1e-9  # accuracies are ratios of integers: this absorbs float rounding, nothing more
PIXEL_CHUNK = 500  # ids per query when reading pixels (SQLite caps bound parameters)
FINISHED = (RetrainStatus.SUCCEEDED, RetrainStatus.REJECTED, RetrainStatus.FAILED)


# -- the lock -------------------------------------------------------------------------------------------

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
    """A lease named `key` in ``watcher_state``: one holder at a time across threads, processes and hosts.

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


# -- the data -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    """The accepted images a run uses, each once (weighting happens in `training_set`), and its record."""

    images: np.ndarray  # (n, 784) uint8, trained on
    labels: np.ndarray  # (n,) uint8
    holdout_images: np.ndarray  # (m, 784) uint8, only to judge models
    holdout_labels: np.ndarray
    record: dict[str, Any]

    def training_set(self, weight: int) -> tuple[np.ndarray, np.ndarray]:
        return np.repeat(self.images, weight, axis=0), np.repeat(self.labels, weight)


def take_snapshot(rt: Runtime, data: Mnist, config: TrainConfig) -> Snapshot:
    """Read the accepted images to train on and to judge with. One metadata query decides which rows count,
    so the counts and the images always agree however many rows arrive meanwhile."""
    settings = rt.settings
    with rt.session() as session:
        rows = session.execute(select(TrainingImage.id, TrainingImage.spend_key, TrainingImage.label,
                                      TrainingImage.review, TrainingImage.duplicate_of, TrainingImage.holdout)
                               .order_by(TrainingImage.id)).all()
        groups: dict[str, list[Any]] = {"trained": [], "holdout": [], "duplicates": [], "excluded": [],
                                        "unreviewed": []}
        for row in rows:
            groups[_group(row.review, row.duplicate_of, row.holdout, settings.retrain_require_review)].append(row)
        pixels = _pixels(session, [r.id for r in groups["trained"] + groups["holdout"]])
    images, labels = _arrays(groups["trained"], pixels)
    holdout_images, holdout_labels = _arrays(groups["holdout"], pixels)
    trained = groups["trained"]
    record = {
        "taken_at": datetime.now(UTC).isoformat(),
        "mnist_digest": data.digest,
        "mnist_source": data.source.split(":", 1)[0],
        "mnist_images": _mnist_images(data, config),
        "accepted_images": len(trained),
        "accepted_weight": settings.retrain_accepted_weight,
        "accepted_examples": len(trained) * settings.retrain_accepted_weight,
        "accepted_label_counts": np.bincount(labels, minlength=10).tolist(),
        "accepted_id_range": [trained[0].id, trained[-1].id] if trained else None,
        "accepted_spend_keys_sha256": hashlib.sha256("\n".join(r.spend_key for r in trained).encode()).hexdigest(),
        "accepted_data_sha256": _data_sha256(images, labels),
        "holdout_images": len(groups["holdout"]),
        "left_out": {name: len(groups[name]) for name in ("duplicates", "excluded", "unreviewed")},
        "require_review": settings.retrain_require_review,
        "seen_up_to_id": rows[-1].id if rows else 0,  # where the count trigger starts counting again
    }
    return Snapshot(images, labels, holdout_images, holdout_labels, record)


def _group(review: ReviewStatus, duplicate_of: int | None, holdout: bool, require_review: bool) -> str:
    """Where one accepted image goes; the first rule that applies wins."""
    if duplicate_of is not None:
        return "duplicates"
    if review == ReviewStatus.EXCLUDED:
        return "excluded"
    if require_review and review != ReviewStatus.APPROVED:
        return "unreviewed"
    return "holdout" if holdout else "trained"


def _pixels(session: Session, ids: list[int]) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    for start in range(0, len(ids), PIXEL_CHUNK):
        chunk = ids[start:start + PIXEL_CHUNK]
        found.update((row.id, row.pixels) for row in session.execute(
            select(TrainingImage.id, TrainingImage.pixels).where(TrainingImage.id.in_(chunk))))
    return found


def _arrays(rows: list[Any], pixels: dict[int, bytes]) -> tuple[np.ndarray, np.ndarray]:
    images = np.frombuffer(b"".join(pixels[r.id] for r in rows), np.uint8).reshape(-1, 784)
    return images, np.array([r.label for r in rows], dtype=np.uint8)


def _data_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    h = hashlib.sha256(np.ascontiguousarray(labels, dtype=np.uint8).tobytes())
    h.update(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
    return h.hexdigest()


def _mnist_images(data: Mnist, config: TrainConfig) -> int:
    """How many MNIST training images the config trains on (the rest of the 60k less validation)."""
    available = len(data.x_train) - config.validation_images
    return available if config.train_images is None else min(available, config.train_images)


def choose_config(settings: Settings, config: TrainConfig | None) -> tuple[TrainConfig, str]:
    """The training config and where it came from: the caller's; by default a fine-tuning of the champion
    (FINETUNE, or FINETUNE_FAST with ``retrain_fast``); with ``retrain_from_scratch`` the full recipe (or TINY)."""
    if config is not None:
        return config, "argument"
    if settings.retrain_from_scratch:
        return (TINY, "scratch-fast") if settings.retrain_fast else (TrainConfig(), "scratch")
    return (FINETUNE_FAST, "finetune-fast") if settings.retrain_fast else (FINETUNE, "finetune")


# -- champion and challenger -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Champion:
    """The model the bounties are judged by now, and the version its successor takes."""

    model_id: int
    version: int
    weights_sha256: str
    artifact_path: str
    next_version: int


def find_champion(rt: Runtime) -> Champion:
    """The model of the active bounties' live contracts (the newest if they differ), or the configured
    artifact when no bounty is active."""
    with rt.session() as session:
        model = session.scalar(
            select(ModelVersion).join(Deployment, Deployment.model_id == ModelVersion.id)
            .join(Bounty, Bounty.id == Deployment.bounty_id)
            .where(Deployment.status == DeploymentStatus.ACTIVE, Bounty.status == BountyStatus.ACTIVE)
            .order_by(ModelVersion.version.desc()).limit(1))
        if model is None:
            model = rt.register_model(session)
        newest = session.scalar(select(func.max(ModelVersion.version))) or 0  # at least the champion's
        # The successor's artifact version is the version its models row will get, so the two always agree.
        return Champion(model.id, model.version, model.weights_sha256, model.artifact_path,
                        next_version=newest + 1)


def _train(data: Mnist, config: TrainConfig, images: np.ndarray, labels: np.ndarray,
           base: ModelArtifact | None = None) -> ModelArtifact:
    from model.train import train  # TensorFlow: imported by a run that trains, never by importing this module

    fine_tune = base.float_weights if base is not None and not config.epochs else None
    return train(data, config, images if len(images) else None, labels if len(labels) else None,
                 base=fine_tune, quiet=True).artifact


def scores(model: IntegerModel, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Integer-model accuracy overall and per digit (None for a digit without images)."""
    y = np.asarray(labels, dtype=np.int64)
    predicted = classify(model, images)[0] if len(y) else np.zeros(0, np.int64)
    per_digit = [float(np.mean(predicted[y == d] == d)) if np.any(y == d) else None for d in range(10)]
    return {"images": int(len(y)), "accuracy": float(np.mean(predicted == y)) if len(y) else None,
            "per_digit": per_digit}


@dataclass
class Verdict:
    """Each check's outcome; the challenger may replace the champion only when every check passed."""

    checks: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, passed: bool, detail: str) -> None:
        self.checks.append({"name": name, "passed": passed, "detail": detail})

    @property
    def reasons(self) -> list[str]:
        return [f"{c['name']}: {c['detail']}" for c in self.checks if not c["passed"]]


def judge(champion: ModelArtifact, challenger: ModelArtifact, data: Mnist, snapshot: Snapshot,
          settings: Settings) -> Verdict:
    """Champion against challenger. The challenger passes when, on the integer models the contracts run,

    - its accuracy on the 10,000 MNIST test images is at least the champion's less ``retrain_tolerance``;
    - its accuracy on each digit's test images is at least the champion's less ``retrain_class_tolerance``
      (about 1,000 images per digit: a looser bound than overall, or noise alone would reject);
    - on the held-out accepted images, if there are at least ``retrain_min_holdout``, its accuracy is at least
      the champion's less ``retrain_class_tolerance`` (a slice of that size is noisy like one digit's);
      with fewer the check is skipped and says so;
    - its script agrees with its reference (label and margin) on the first ``retrain_verify_images`` test images.

    A tolerance of 0 demands "no worse"; 1 accepts anything that passes the script check.
    """
    verdict = Verdict()
    old, new = (scores(m.integer, data.x_test, data.y_test) for m in (champion, challenger))
    verdict.figures["test"] = {"champion": old, "challenger": new}
    tolerance, class_tolerance = settings.retrain_tolerance, settings.retrain_class_tolerance
    verdict.add("test accuracy", _no_worse(new["accuracy"], old["accuracy"], tolerance),
                f"{new['accuracy']:.4f} against the champion's {old['accuracy']:.4f} (tolerance {tolerance})")
    worse = [f"{d}: {n:.4f} < {o:.4f}" for d, (n, o) in enumerate(zip(new["per_digit"], old["per_digit"], strict=True))
             if not _no_worse(n, o, class_tolerance)]
    verdict.add("per-digit test accuracy", not worse,
                f"digits below the champion's (tolerance {class_tolerance}): {', '.join(worse)}" if worse
                else f"every digit within {class_tolerance} of the champion's")
    _judge_holdout(verdict, champion, challenger, snapshot, settings)
    _judge_script(verdict, challenger, data, settings.retrain_verify_images)
    return verdict


def _no_worse(new: float, old: float, tolerance: float) -> bool:
    return new + FLOAT_SLACK >= old - tolerance


def _judge_holdout(verdict: Verdict, champion: ModelArtifact, challenger: ModelArtifact, snapshot: Snapshot,
                   settings: Settings) -> None:
    count = len(snapshot.holdout_labels)
    if count < settings.retrain_min_holdout:
        verdict.figures["holdout"] = None
        verdict.add("holdout accuracy", True,
                    f"skipped: {count} held-out accepted images, fewer than {settings.retrain_min_holdout}")
        return
    old, new = (scores(m.integer, snapshot.holdout_images, snapshot.holdout_labels) for m in (champion, challenger))
    verdict.figures["holdout"] = {"champion": old, "challenger": new}
    verdict.add("holdout accuracy", _no_worse(new["accuracy"], old["accuracy"], settings.retrain_class_tolerance),
                f"{new['accuracy']:.4f} against the champion's {old['accuracy']:.4f} on {count} held-out accepted "
                f"images (tolerance {settings.retrain_class_tolerance})")


def _judge_script(verdict: Verdict, challenger: ModelArtifact, data: Mnist, k: int) -> None:
    try:
        result = verify_images(challenger.integer, data.x_test[:k], data.y_test[:k])
    except ScriptError as exc:  # a script that cannot be built or run is a challenger that cannot judge
        verdict.figures["script"] = None
        verdict.add("script agrees with reference", False, str(exc))
        return
    verdict.figures["script"] = {name: result[name] for name in ("images", "agree", "locking_script_bytes")}
    verdict.add("script agrees with reference", result["agree"] == k,
                f"{result['agree']} of {k} test images give the reference's label and margin")


def save_challenger(challenger: ModelArtifact, home: Path) -> Path:
    """Save under ``{home}/models/{sha[:12]}/``; an identical artifact already there is kept as it is
    (a deployed contract may be reading it)."""
    path = home / "models" / challenger.weights_sha256[:12]
    try:
        if load_artifact(path).weights_sha256 == challenger.weights_sha256:
            return path.resolve()
    except ArtifactError:
        pass  # absent or half-written: write it
    return challenger.save(path).resolve()


# -- the run ------------------------------------------------------------------------------------------

class _Run:
    """The ``retrain_runs`` row of one run and the summary `retrain` returns."""

    def __init__(self, rt: Runtime, trigger: RetrainTrigger, champion: Champion) -> None:
        self.rt = rt
        self.metrics: dict[str, Any] = {"champion": {"version": champion.version,
                                                     "weights_sha256": champion.weights_sha256}}
        with rt.session() as session:
            row = RetrainRun(status=RetrainStatus.QUEUED, trigger=trigger, base_model_id=champion.model_id)
            session.add(row)
            session.flush()
            self.id = row.id
        self.summary: dict[str, Any] = {
            "run_id": self.id, "status": str(RetrainStatus.QUEUED), "trigger": str(trigger),
            "base_model_version": champion.version, "base_weights_sha256": champion.weights_sha256,
            "model_version": None, "weights_sha256": None, "artifact_path": None, "reason": None, "error": None,
            "redeployed": [], "skipped_bounties": [], "metrics": self.metrics}

    def start(self) -> None:
        self._write(status=RetrainStatus.RUNNING, started_at=datetime.now(UTC))

    def record(self, **metrics: Any) -> None:
        self.metrics.update(metrics)
        self._write()

    def finish(self, status: RetrainStatus, message: str | None = None) -> dict[str, Any]:
        self.summary["reason" if status == RetrainStatus.REJECTED else "error"] = message
        self._write(status=status, error=message, finished_at=datetime.now(UTC))
        log.info("retrain run %d %s%s", self.id, status, f": {message}" if message else "")
        return self.summary

    def _write(self, **columns: Any) -> None:
        if "status" in columns:
            self.summary["status"] = str(columns["status"])
        with self.rt.session() as session:
            row = session.get(RetrainRun, self.id)
            assert row is not None  # we created it, and runs are never deleted
            for name, value in columns.items():
                setattr(row, name, value)
            row.metrics = json.loads(json.dumps(self.metrics))  # a new object, so the JSON column is written


def retrain(rt: Runtime, trigger: RetrainTrigger, config: TrainConfig | None = None, *,
            data: Mnist | None = None) -> dict[str, Any]:
    """Run one whole retraining cycle (see the module docstring) and return its summary: ``run_id``,
    ``status`` (succeeded, rejected, failed, or skipped when another run holds the lease), the new
    ``model_version`` and ``weights_sha256``, ``metrics``, ``reason`` or ``error``, and ``redeployed``
    (bounty ids with their migrate txids). `data` is MNIST already loaded (tests share theirs).

    Failures are recorded in the run and returned, not raised: a rerun would only repeat them.
    """
    lease = Lease(rt.engine)
    if not lease.acquire():
        holder = lease.holder() or {}
        log.info("retrain skipped: run lease held by %s pid %s", holder.get("host"), holder.get("pid"))
        return {"run_id": None, "status": "skipped", "trigger": str(trigger),
                "reason": f"another retraining run holds the lease until {_when(holder.get('expires'))}"}
    try:
        lease.keep_alive()
        _abandon_stale_runs(rt)
        try:
            champion = find_champion(rt)
        except Exception as exc:  # no models row to hang a run on: the configured artifact is unusable
            log.exception("retrain failed before it could be recorded")
            return {"run_id": None, "status": str(RetrainStatus.FAILED), "trigger": str(trigger),
                    "error": _describe(exc)}
        run = _Run(rt, trigger, champion)
        try:
            return _cycle(rt, run, lease, champion, config, data)
        except Exception as exc:
            log.exception("retrain run %d failed", run.id)
            return run.finish(RetrainStatus.FAILED, _describe(exc))
    finally:
        lease.release()


def _cycle(rt: Runtime, run: _Run, lease: Lease, champion: Champion, config: TrainConfig | None,
           data: Mnist | None) -> dict[str, Any]:
    run.start()
    settings = rt.settings
    config, source = choose_config(settings, config)
    run.record(config={"source": source, **config.to_json()})
    old = rt.artifact(champion.artifact_path)
    data = data if data is not None else load_mnist()
    snapshot = take_snapshot(rt, data, config)
    run.record(data_snapshot=snapshot.record)
    log.info("retrain run %d: training (%s config) on %d accepted images x %d", run.id, source,
             snapshot.record["accepted_images"], settings.retrain_accepted_weight)
    trained = _train(data, config, *snapshot.training_set(settings.retrain_accepted_weight), base=old)
    lease.check()
    if trained.weights_sha256 == champion.weights_sha256:
        return run.finish(RetrainStatus.REJECTED, "the challenger has the champion's weights: nothing to deploy")
    verdict = judge(old, trained, data, snapshot, settings)
    challenger = replace(trained, version=champion.next_version, parent_sha256=champion.weights_sha256,
                         metrics={**trained.metrics, **verdict.figures, "data_snapshot": snapshot.record})
    path = save_challenger(challenger, settings.home)
    run.summary.update(weights_sha256=challenger.weights_sha256, artifact_path=str(path))
    run.record(challenger={"version": challenger.version, "weights_sha256": challenger.weights_sha256,
                           "artifact_path": str(path)}, checks=verdict.checks, **verdict.figures)
    if verdict.reasons:
        return run.finish(RetrainStatus.REJECTED, "; ".join(verdict.reasons))
    lease.renew()  # still ours before anything is deployed
    _register(rt, run, path, snapshot)
    _redeploy_all(rt, run, lease, path)
    return run.finish(RetrainStatus.SUCCEEDED)


def _register(rt: Runtime, run: _Run, path: Path, snapshot: Snapshot) -> None:
    with rt.session() as session:
        model = rt.register_model(session, path)
        model.data_snapshot = snapshot.record
        row = session.get(RetrainRun, run.id)
        assert row is not None
        row.new_model_id = model.id
        run.summary["model_version"] = model.version
    log.info("retrain run %d: model version %d registered", run.id, run.summary["model_version"])


def _redeploy_all(rt: Runtime, run: _Run, lease: Lease, path: Path) -> None:
    """Migrate each active bounty, in id order; stop at the first failure (see the module docstring)."""
    for bounty_id in _bounties_to_move(rt, path):
        lease.renew()
        try:
            result = redeploy(rt, bounty_id, path)
        except BountyClosed as exc:  # exhausted or withdrawn since we listed it: nothing left to move
            run.summary["skipped_bounties"].append({"bounty_id": bounty_id, "reason": str(exc)})
            continue
        except Exception as exc:
            raise RetrainError(f"redeploying bounty {bounty_id} failed after {len(run.summary['redeployed'])} "
                               f"migrated: {_describe(exc)}") from exc
        run.summary["redeployed"].append({"bounty_id": bounty_id, "migrate_txid": result.migrate_txid})
        run.record(redeployed=run.summary["redeployed"], skipped_bounties=run.summary["skipped_bounties"])
        log.info("retrain run %d: bounty %d migrated in %s", run.id, bounty_id, result.migrate_txid)


def _bounties_to_move(rt: Runtime, path: Path) -> list[int]:
    sha = rt.artifact(path).weights_sha256
    with rt.session() as session:
        return list(session.scalars(
            select(Bounty.id).join(Deployment, Deployment.bounty_id == Bounty.id)
            .join(ModelVersion, ModelVersion.id == Deployment.model_id)
            .where(Bounty.status == BountyStatus.ACTIVE, Deployment.status == DeploymentStatus.ACTIVE,
                   ModelVersion.weights_sha256 != sha)
            .order_by(Bounty.id)))


def _abandon_stale_runs(rt: Runtime) -> None:
    """Runs left queued or running belong to a holder that died: we hold the lease now, so none is alive."""
    with rt.session() as session:
        stale = session.scalars(select(RetrainRun).where(
            RetrainRun.status.in_([RetrainStatus.QUEUED, RetrainStatus.RUNNING]))).all()
        for row in stale:
            row.status, row.finished_at = RetrainStatus.FAILED, datetime.now(UTC)
            row.error = "abandoned: its worker stopped before finishing"
            log.warning("retrain run %d marked failed: abandoned by a worker that died", row.id)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _when(epoch: Any) -> str:
    return datetime.fromtimestamp(float(epoch), UTC).isoformat() if epoch is not None else "unknown"


# -- the count trigger ------------------------------------------------------------------------------------

def accepted_since_last_run(rt: Runtime) -> int:
    """Accepted images (neither duplicates nor excluded) stored after the snapshot of the last finished run.

    Any finished run counts, not only a succeeded one: after a rejection or a failure the same images would
    only give the same result, so the count starts again (the schedule still retries). "After the snapshot"
    rather than "after the run finished": images that arrived while a run trained were not in it, so they
    count. The snapshot records the highest training-image id it read; ids only grow.
    """
    with rt.session() as session:
        seen = 0
        for metrics in session.scalars(select(RetrainRun.metrics).where(RetrainRun.status.in_(FINISHED))
                                       .order_by(RetrainRun.id.desc())):
            if metrics and "data_snapshot" in metrics:  # a run that failed before its snapshot read nothing
                seen = int(metrics["data_snapshot"]["seen_up_to_id"])
                break
        return int(session.scalar(select(func.count(TrainingImage.id)).where(
            TrainingImage.id > seen, TrainingImage.duplicate_of.is_(None),
            TrainingImage.review != ReviewStatus.EXCLUDED)) or 0)


def maybe_retrain(rt: Runtime) -> dict[str, Any] | None:
    """Retrain (trigger "count") once ``retrain_after_images`` new accepted images arrived; else None."""
    waiting = accepted_since_last_run(rt)
    if waiting < rt.settings.retrain_after_images:
        log.debug("%d new accepted images, retraining at %d", waiting, rt.settings.retrain_after_images)
        return None
    return retrain(rt, RetrainTrigger.COUNT)


__all__ = ["LEASE_SECONDS", "Champion", "Lease", "Snapshot", "Verdict", "accepted_since_last_run",
           "choose_config", "find_champion", "judge", "maybe_retrain", "retrain", "save_challenger", "scores",
           "take_snapshot"]
