"""What the service shows of its records: the typed views its functions return, the HTTP API serves as
response models and the CLI prints (`model_dump()`). Defined here once; field order is output order."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class BountyPublic(BaseModel):
    """A bounty's terms and live numbers, with the contract that holds its balance now."""

    id: int
    digits: list[int]
    payout_sats: int
    min_margin: int
    max_fee_sats: int
    budget_sats: int
    status: str
    remaining_sats: int
    accepted_count: int
    paid_sats: int
    model_version: int | None
    weights_sha256: str | None
    contract_txid: str | None
    contract_version: int | None
    current_outpoint: str | None
    mode: str  # "vetted": every payment is also co-signed by the attestor after vetting; "open": none is
    appeal_gap: int  # vetted: an appeal's digit may trail the classifier's first choice by at most this much
    attestor_pubkey: str | None  # vetted: the co-signer's public key, as written in the contract
    judge_sha256: str | None  # vetted: the policy hash of the judge the bounty was published with
    vetting_policy: dict[str, Any] | None = None  # vetted: the judge's hashes and thresholds, the quotas


class BountyMigrated(BountyPublic):
    """A bounty after its balance moved into a new contract (a top-up or a redeploy)."""

    migrate_txid: str


class BountyWithdrawn(BountyPublic):
    """A bounty after the owner took its balance back."""

    withdraw_txid: str
    withdrawn_sats: int


class SubmissionPublic(BaseModel):
    """A submission's verdict, payment and progress on the chain."""

    id: int
    bounty_id: int
    status: str
    reason: str | None
    digit: int
    margin: int
    model_sha256: str
    model_version: int | None
    txid: str | None
    recipient_address: str
    source: str
    block_height: int | None
    confirmations: int
    payout_sats: int | None
    created_at: str
    claimed_digit: int | None = None  # vetted: the digit the payment is for (an appeal's claim)
    appeal: bool = False
    vetting: dict[str, Any] | None = None  # vetted: what each check found (novelty, judge, quota)


class SubmissionRecord(SubmissionPublic):
    """A submission in the audit export: with its pixels."""

    pixels_hex: str


class DeploymentRecord(BaseModel):
    """One contract a bounty has lived in, for the audit export."""

    version: int
    status: str
    model_sha256: str
    deploy_txid: str
    locking_script_sha256: str


class BountyExport(BaseModel):
    """The audit export: the terms, every deployment and every submission with its txid and verdict."""

    bounty: BountyPublic
    deployments: list[DeploymentRecord]
    submissions: list[SubmissionRecord]


class Verdict(BaseModel):
    """The dry run's answer: what the on-chain classifier reads and, for a bounty, whether it would pay."""

    label: int
    margin: int
    weights_sha256: str
    bounty_id: int | None = None
    accepted: bool | None = None


class RetrainRedeploy(BaseModel):
    """A bounty moved into a contract of the new model by a retraining run."""

    bounty_id: int
    txid: str


class RetrainReport(BaseModel):
    """What one retraining cycle did (`bounty retrain --wait`). `status`: deployed (a succeeded run), rejected
    (the gate refused the challenger), skipped (another run held the lease) or failed. `reasons`: the gate's
    failed checks, or why it was skipped. `where`: the run ran on the workers or in the command's own process."""

    status: str
    run_id: int | None
    version: int | None  # the new model's version; None unless deployed
    base_version: int | None  # the champion's version
    metrics: dict[str, Any]  # mnist_test_accuracy(_before), crowd_holdout_accuracy_before/_after, ...
    images: dict[str, Any] | None  # what the run trained on and held out
    reasons: list[str]
    redeployed: list[RetrainRedeploy]
    error: str | None
    where: str
