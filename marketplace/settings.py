"""Service settings: one `Settings` read by the API, the daemon, the workers, the CLI and migrations.

Values come from ``BOUNTY_*`` environment variables, then an optional ``.env`` file in the working
directory, then the defaults below. The defaults are the embedded mode: everything lives under
``BOUNTY_HOME`` (a SQLite database, a local chain file) and Celery runs in-process. Production sets
``BOUNTY_DATABASE_URL`` (PostgreSQL), ``BOUNTY_REDIS_URL`` and ``BOUNTY_CHAIN=network``.

Secrets (API keys, tokens) are `SecretStr` with no default, so they never show in ``repr`` or logs,
and passwords inside the database and Redis URLs are masked there too. The operator's private key is
never a setting: `operator_wif_env` names the environment variable that holds it, and
`operator_key_file` a file only its owner can read (see `marketplace.chain.wallet`). A WIF written in
``.env`` is not seen by the wallet; export it in the process environment.
"""

from __future__ import annotations

import ipaddress
import logging
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from marketplace.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_HOME = Path("~/.digit-bounty")
DATABASE_FILE = "bounty.sqlite"
CHAIN_FILE = "chain.sqlite"


class Settings(BaseSettings):
    """Everything a service process needs to know about its environment. Build one with keyword
    overrides in tests (``Settings(home=tmp_path, _env_file=None)``); elsewhere use `get_settings()`."""

    model_config = SettingsConfigDict(env_prefix="BOUNTY_", env_file=".env", env_file_encoding="utf-8",
                                      extra="ignore", protected_namespaces=())

    home: Path = DEFAULT_HOME  # all state of the embedded mode lives here
    database_url: str | None = None  # None: SQLite under home (see `database`)
    redis_url: str | None = None  # None: embedded mode, Celery in-process on a memory broker

    chain: Literal["local", "network"] = "local"  # local: the development chain at `chain_path`
    network: Literal["mainnet", "testnet"] = "testnet"  # which addresses are accepted; the network backend's
    arc_url: str | None = None  # the ARC endpoint that broadcasts (needed when chain = network)
    arc_api_key: SecretStr | None = None
    arc_callback_url: str | None = None
    arc_callback_token: SecretStr | None = None
    admin_token: SecretStr | None = None  # the operator pages' token (/operator); unset: no operator pages
    woc_url: str = "https://api.whatsonchain.com"  # WhatsOnChain's host; the chain layer adds /v1/bsv/<net>
    fee_rate: Annotated[int, Field(ge=1)] = 100  # satoshis per 1000 bytes

    operator_wif_env: Annotated[str, Field(min_length=1)] = "BOUNTY_OPERATOR_WIF"  # the NAME of the variable
    operator_key_file: Path | None = None  # or a file holding the WIF, mode 600 or 400
    attestor_wif_env: Annotated[str, Field(min_length=1)] = "BOUNTY_ATTESTOR_WIF"  # vetted bounties' co-signer
    attestor_key_file: Path | None = None  # (the NAME of the variable, or a file; never the operator's key)

    model_path: Path | None = None  # None: the artifact shipped in model/default
    min_confirmations: Annotated[int, Field(ge=0)] = 1  # 0 trusts the mempool
    block_interval: Annotated[float, Field(gt=0)] = 10.0  # seconds between blocks on the embedded dev chain
    task_visibility_timeout: Annotated[int, Field(ge=10)] = 3600  # Redis: when a dead worker's tasks come back
    rate_limit_per_minute: Annotated[int, Field(ge=1)] = 60
    max_upload_bytes: Annotated[int, Field(ge=1024)] = 2_000_000  # an image; a request's body may add 10,000
    oversized_drain_bytes: Annotated[int, Field(ge=0)] = 64_000_000  # an oversized body read and dropped up to
    # this much before the 413, so that a client that sends it whole can read the answer; past it, the connection
    # is closed
    header_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0  # a request's headers must arrive within this
    body_timeout_seconds: Annotated[float, Field(gt=0)] = 30.0  # ... and its body within this after them (408)
    # Pool bounties (marketplace.pools): how many prizes are kept live, and how long a claim waits for one.
    pool_prizes: Annotated[int, Field(ge=1, le=500)] = 16  # new pools: the most prizes live at once (--prizes)
    pool_min_prizes: Annotated[int, Field(ge=1)] = 2  # the fewest kept live however slow the claims come
    pool_wait_seconds: Annotated[float, Field(ge=0)] = 5.0  # a claim finding no free prize waits this long for one
    pool_take_timeout: Annotated[float, Field(gt=0)] = 120.0  # a prize handed out and not spent after this is freed
    # Vetted bounties (marketplace.vetting): the judge, the novelty index, the appeal gap, the quotas.
    judge_path: Path | None = None  # None: the judge shipped in model/judge_default
    novelty_index_mnist_test: bool = True  # index MNIST's test images too (a benchmark may hold them back)
    novelty_cache_dir: Path | None = None  # where the MNIST novelty index file is kept (None: home)
    appeal_gap: Annotated[int, Field(ge=0)] = 4_000  # new vetted bounties: how far behind an appeal may be
    appeals_need_review: bool = False  # hold appeals that passed vetting until an operator approves them
    quota_per_payee_per_hour: Annotated[int, Field(ge=0)] = 20  # vetted submissions per payout address (0: off)
    quota_per_client_per_hour: Annotated[int, Field(ge=0)] = 60  # ... per client address (0: off)
    trusted_proxies: str = ""  # comma-separated addresses/networks whose X-Forwarded-For is believed
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "WARNING"  # every process's log threshold
    log_format: Literal["text", "json"] = "text"  # json: one object per line, for a log collector

    # Retraining (workers.retraining): when to run, on what, and how a challenger must compare with the champion.
    retrain_after_images: Annotated[int, Field(ge=1)] = 100  # a run once this many new accepted images arrived
    retrain_every_seconds: Annotated[float, Field(gt=0)] = 86400  # ... and on this schedule regardless
    retrain_fast: bool = False  # a seconds-long retraining (a subset, one epoch) for tests and demos
    retrain_from_scratch: bool = False  # train anew with the full recipe instead of fine-tuning the deployed model
    # The gate (workers.retraining.judge; the reasoning is in the README's "Retraining" section).
    retrain_tolerance: Annotated[float, Field(ge=0, le=1)] = 0.003  # MNIST test may drop this much overall ...
    retrain_class_tolerance: Annotated[float, Field(ge=0, le=1)] = 0.03  # ... and this much on one digit
    retrain_min_holdout_gain: Annotated[float, Field(ge=0, le=1)] = 0.0  # held-out crowd: at least this gain
    retrain_require_review: bool = False  # train only on approved images (else pending and approved)
    retrain_open_needs_review: bool = True  # ... and open bounties' images only once approved, whatever the above
    # The recipe (workers.retraining.recipe): candidates tried, the one chosen on validation.
    retrain_weights: Annotated[tuple[Annotated[int, Field(ge=1, le=100)], ...],
                               Field(min_length=1)] = (1, 3, 10)  # times each bought image counts
    retrain_epochs: Annotated[tuple[Annotated[int, Field(ge=1, le=30)], ...],
                              Field(min_length=1)] = (3, 6)  # fine-tuning epochs
    retrain_scratch_when_stuck: bool = True  # train anew when no fine-tuned candidate beats the champion
    retrain_validation_every: Annotated[int, Field(ge=2)] = 5  # one bought image in this many chooses the recipe
    retrain_verify_images: Annotated[int, Field(ge=1)] = 20  # script-versus-reference check before deploying
    retrain_min_holdout: Annotated[int, Field(ge=1)] = 10  # fewer held-out crowd images: that check is skipped

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, level: Any) -> Any:
        return level.strip().upper() if isinstance(level, str) else level

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_format(cls, form: Any) -> Any:
        return form.strip().lower() if isinstance(form, str) else form

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, proxies: str) -> str:
        for part in proxies.split(","):
            if part.strip():
                try:
                    ipaddress.ip_network(part.strip(), strict=False)
                except ValueError:
                    raise ValueError(f"{part.strip()!r} is not an IP address or network") from None
        return proxies

    @property
    def trusted_proxy_networks(self) -> list[str]:
        return [part.strip() for part in self.trusted_proxies.split(",") if part.strip()]

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, home: Path) -> Path:
        # Workers and the daemon may start elsewhere: pin a relative home to where settings were read.
        return home.expanduser().absolute()

    @field_validator("operator_key_file", "attestor_key_file", "model_path", "judge_path", "novelty_cache_dir")
    @classmethod
    def _expand(cls, path: Path | None) -> Path | None:
        return path.expanduser() if path is not None else None

    @field_validator("redis_url", "arc_url")
    @classmethod
    def _blank_is_none(cls, url: str | None) -> str | None:
        # an empty BOUNTY_REDIS_URL= means "not set": the embedded mode, for the API and Celery alike; an empty
        # BOUNTY_ARC_URL= (docker-compose passes one when it is unset) is no ARC endpoint
        return url.strip() if url is not None and url.strip() else None

    @field_validator("database_url")
    @classmethod
    def _psycopg_driver(cls, url: str | None) -> str | None:
        # Hosting services hand out postgres:// URLs; SQLAlchemy would then look for psycopg2, absent here.
        if url is None or not url.strip():
            return None
        url = url.strip()
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix):]
        return url

    @model_validator(mode="after")
    def _network_needs_arc(self) -> Settings:
        if self.chain == "network" and not self.arc_url:
            raise ValueError("BOUNTY_CHAIN=network needs BOUNTY_ARC_URL (the ARC endpoint that broadcasts)")
        return self

    @property
    def database(self) -> str:
        """The effective SQLAlchemy URL: `database_url`, or a SQLite file under `home`."""
        return self.database_url or f"sqlite:///{self.home / DATABASE_FILE}"

    @property
    def chain_path(self) -> Path:
        """The local development chain's file."""
        return self.home / CHAIN_FILE

    @property
    def embedded(self) -> bool:
        """True when Celery runs in-process on a memory broker (no Redis configured)."""
        return self.redis_url is None

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, (mask_password(value) if name in ("database_url", "redis_url") and value else value)


def mask_password(url: str) -> str:
    """`url` with any password replaced by ``***``, for logs and output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once. Tests that change the environment call ``get_settings.cache_clear()``.

    Raises `ConfigError` naming each bad variable (never its value, which may be a secret).
    """
    try:
        settings = Settings()
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {'; '.join(_describe(err) for err in exc.errors())}") from None
    log.debug("settings loaded: %r", settings)
    return settings


def _describe(error: Any) -> str:
    field = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"BOUNTY_{field.upper()}: {message}" if field else message
