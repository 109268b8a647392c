"""What a running service holds, built once from Settings: database engine, chain, operator wallet,
and the compiled contracts of its deployments. The API, the daemon, the workers and the CLI share it."""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from contracts.bounty import BountyContract, BountyTerms, Mode
from contracts.errors import ContractError
from contracts.pool import PoolContract
from marketplace.attestor import Attestor
from marketplace.chain import Chain, LocalChain, NetworkChain, Wallet
from marketplace.chain.errors import WalletError
from marketplace.db import make_engine, session_scope
from marketplace.errors import ConfigError
from marketplace.schema import Bounty, Deployment, ModelVersion
from marketplace.settings import Settings, get_settings
from model.artifact import ModelArtifact, load_artifact
from model.artifact import artifact_path as shipped_or_path  # its own name here: `artifact_path` is a parameter

if TYPE_CHECKING:
    from marketplace.vetting import Vetting

log = logging.getLogger(__name__)
Compiled = TypeVar("Compiled", BountyContract, PoolContract)
OPERATOR_KEY_FILE = "operator.key"
ATTESTOR_KEY_FILE = "attestor.key"


class Runtime:
    """Long-lived service objects. Cheap to build; the chain and wallet open on first use."""

    def __init__(self, settings: Settings, engine: Engine | None = None, chain: Chain | None = None) -> None:
        self.settings = settings
        _writable_home(settings.home)
        self.engine = engine or make_engine(settings.database)
        self._chain = chain
        self._contracts: dict[int, BountyContract] = {}
        self._pools: dict[int, PoolContract] = {}
        self._artifacts: dict[str, ModelArtifact] = {}
        self._lock = threading.Lock()

    def session(self) -> AbstractContextManager[Session]:
        return session_scope(self.engine)

    @property
    def chain(self) -> Chain:
        with self._lock:
            if self._chain is None:
                self._chain = self._open_chain()
            return self._chain

    def _open_chain(self) -> Chain:
        s = self.settings
        if s.chain == "local":
            return LocalChain(s.chain_path, min_fee_rate=s.fee_rate, network=s.network)
        assert s.arc_url is not None  # Settings refuses chain="network" without it
        return NetworkChain(
            arc_url=s.arc_url, journal_path=s.home / "network-journal.sqlite",
            network="main" if s.network == "mainnet" else "test",
            arc_api_key=s.arc_api_key.get_secret_value() if s.arc_api_key else None,
            callback_url=s.arc_callback_url,
            callback_token=s.arc_callback_token.get_secret_value() if s.arc_callback_token else None,
            woc_url=s.woc_url)

    @property
    def local_chain(self) -> LocalChain | None:
        """The embedded dev chain, when that is what runs (it has a faucet and mines on demand)."""
        chain = self.chain
        return chain if isinstance(chain, LocalChain) else None

    @cached_property
    def wallet(self) -> Wallet:
        """The operator's wallet: from the configured variable or key file; on the embedded dev chain a
        key file under BOUNTY_HOME is created on first use."""
        s = self.settings
        if s.operator_key_file is not None:
            return Wallet.from_file(s.operator_key_file)
        try:
            return Wallet.from_env(s.operator_wif_env)
        except WalletError:
            if s.chain != "local":
                raise
        path = s.home / OPERATOR_KEY_FILE
        if path.exists():
            return Wallet.from_file(path)
        return Wallet.create_key_file(path, testnet=s.network == "testnet")

    @cached_property
    def attestor(self) -> Attestor:
        """The vetted bounties' co-signer, loaded like the wallet (its own variable or key file; a key file
        under BOUNTY_HOME created on first use on the dev chain). `create_bounty` refuses the operator's own key;
        this does not load the operator wallet, which the API process does not hold in production."""
        s = self.settings
        if s.attestor_key_file is not None:
            attestor = Attestor.from_file(s.attestor_key_file)
        else:
            try:
                attestor = Attestor.from_env(s.attestor_wif_env)
            except WalletError:
                if s.chain != "local":
                    raise
                path = s.home / ATTESTOR_KEY_FILE
                attestor = Attestor.from_file(path) if path.exists() else \
                    Attestor.create_key_file(path, testnet=s.network == "testnet")
        return attestor

    @cached_property
    def vetting(self) -> Vetting:
        """The vetted bounties' checks (novelty index, judge, quotas), built on first use."""
        from marketplace.vetting import Vetting

        return Vetting(self.settings)

    # -- models and contracts -------------------------------------------------------------------------

    def artifact(self, path: Path | str | None = None) -> ModelArtifact:
        key = str(shipped_or_path(path or self.settings.model_path))
        with self._lock:
            if key not in self._artifacts:
                self._artifacts[key] = load_artifact(key)
            return self._artifacts[key]

    def register_model(self, session: Session, artifact_path: Path | str | None = None, *,
                       version: int | None = None) -> ModelVersion:
        """The models row for an artifact, created on first sight (lineage: its parent hash). From then on
        the model is that row: its id and hash. A new row takes `version` when given (a retraining decides
        its challenger's version once, and writes it into the artifact too), else the one after the newest."""
        path = shipped_or_path(artifact_path or self.settings.model_path).resolve()
        artifact = self.artifact(path)
        row = session.scalar(select(ModelVersion).where(ModelVersion.weights_sha256 == artifact.weights_sha256))
        if row is None:
            if version is None:
                version = (session.scalar(select(ModelVersion.version).order_by(ModelVersion.version.desc())) or 0) + 1
            row = ModelVersion(weights_sha256=artifact.weights_sha256, version=version,
                               parent_sha256=artifact.parent_sha256, artifact_path=str(path),
                               config=artifact.config, metrics=artifact.metrics)
            session.add(row)
            session.flush()
        return row

    def new_contract(self, model: ModelVersion, bounty: Bounty) -> BountyContract:
        """The contract `model` judges under `bounty`'s terms (its artifact is loaded once per process)."""
        return BountyContract(self.artifact(model.artifact_path).integer, terms_of(bounty))

    def contract(self, deployment: Deployment) -> BountyContract:
        """The compiled contract of a deployment (compiled once per process)."""
        return self._compiled(self._contracts, deployment, self.new_contract)

    def new_pool(self, model: ModelVersion, bounty: Bounty) -> PoolContract:
        """The prize script `model` judges under a pool `bounty`'s terms."""
        return PoolContract(self.artifact(model.artifact_path).integer, terms_of(bounty))

    def pool(self, deployment: Deployment) -> PoolContract:
        """The prize script of a pool bounty's deployment (compiled once per process)."""
        return self._compiled(self._pools, deployment, self.new_pool)

    def _compiled(self, cache: dict[int, Compiled], deployment: Deployment,
                  compile_: Callable[[ModelVersion, Bounty], Compiled]) -> Compiled:
        """A deployment's script from `cache`, compiled on first use and checked against the deployed script's hash."""
        with self._lock:
            cached = cache.get(deployment.id)
        if cached is None:
            cached = compile_(deployment.model, deployment.bounty)
            if script_sha256(cached) != deployment.locking_script_sha256:
                raise ContractError(f"deployment {deployment.id}: its model and terms no longer give the deployed "
                                    "script (was the artifact changed?)")
            with self._lock:
                cache[deployment.id] = cached
        return cached

    def close(self) -> None:
        if self._chain is not None:
            self._chain.close()
        self.engine.dispose()


def terms_of(bounty: Bounty) -> BountyTerms:
    return BountyTerms(digits=tuple(bounty.digits), payout=bounty.payout_sats, min_margin=bounty.min_margin,
                       max_fee=bounty.max_fee_sats, owner_pubkey=bytes.fromhex(bounty.owner_pubkey), tag=bounty.id,
                       mode=cast(Mode, str(bounty.mode)), attestor_pubkey=bytes.fromhex(bounty.attestor_pubkey)
                       if bounty.attestor_pubkey else None, appeal_gap=bounty.appeal_gap)


def script_sha256(contract: BountyContract | PoolContract) -> str:
    return hashlib.sha256(contract.lock().serialize()).hexdigest()


def _writable_home(home: Path) -> None:
    """Create BOUNTY_HOME if needed and check that files can be written there, so that a home that cannot hold
    the service's state is one sentence now, not a database or chain error later."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=home):
            pass
    except OSError as exc:
        raise ConfigError(f"BOUNTY_HOME {home} cannot hold the service's files ({exc.strerror or exc}): "
                          "point BOUNTY_HOME at a directory you can write") from None


def open_runtime(settings: Settings | None = None) -> Runtime:
    """A Runtime (on the process's settings unless given) on an up-to-date schema: an SQLite database (the
    embedded default) is migrated on the spot; any other must already be at head (`bounty db upgrade`), so
    production migrations stay deliberate."""
    from marketplace import migrate

    settings = settings or get_settings()
    _writable_home(settings.home)  # before the SQLite file in it is made
    url = settings.database
    if url.startswith("sqlite"):
        migrate.upgrade(url)
    elif migrate.current(url) != migrate.head():
        raise ConfigError(f"the database {migrate.display_url(url)} is not at the latest schema: run "
                          "`bounty db upgrade` first")
    return Runtime(settings)
