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
    fee_sats_per_image: int  # the most fee one paid image takes from the balance: the contract's maximum fee
    cost_sats_per_image: int  # payout + fee_sats_per_image: what one paid image costs the balance at most
    images_left: int  # images the live balance pays for whatever they are (each at cost_sats_per_image)
    accepted_count: int
    paid_sats: int
    fees_spent_sats: int  # the fees of every paid image's spend so far, from the books
    model_version: int | None
    weights_sha256: str | None
    contract_txid: str | None
    contract_txid_url: str | None = None  # its explorer page (marketplace.explorer); so for every *txid_url
    contract_version: int | None
    current_outpoint: str | None
    mode: str  # "vetted": every payment is also co-signed by the attestor after vetting; "open": none is
    appeal_gap: int  # vetted: an appeal's digit may trail the classifier's first choice by at most this much
    attestor_pubkey: str | None  # vetted: the co-signer's public key, as written in the contract
    judge_sha256: str | None  # vetted: the policy hash of the judge the bounty was published with
    vetting_policy: dict[str, Any] | None = None  # vetted: the judge's hashes and thresholds, the quotas
    shape: str = "chain"  # "chain": one contract output re-created by each paid image; "pool": prize outputs
    prizes: int | None = None  # pool: the most prizes kept live at once
    live_prizes: int | None = None  # pool: prizes on chain now (free, or being claimed)
    reserve_sats: int | None = None  # pool: the owner's reserve, which pays for new prizes
    owner_transactions: int | None = None  # pool: deploy, refills, top-ups, redeploys, withdrawal so far


class BountyMigrated(BountyPublic):
    """A bounty after its balance moved into a new contract (a top-up or a redeploy)."""

    migrate_txid: str
    migrate_txid_url: str | None = None


class BountyWithdrawn(BountyPublic):
    """A bounty after the owner took its balance back."""

    withdraw_txid: str
    withdraw_txid_url: str | None = None
    withdrawn_sats: int


class SubmissionPublic(BaseModel):
    """A submission's verdict, payment and progress on the chain."""

    id: int
    bounty_id: int
    status: str
    reason: str | None
    reason_text: str | None = None  # the reason in words a contributor can act on (marketplace.errors.REASON_TEXT)
    digit: int
    margin: int
    model_sha256: str
    model_version: int | None
    txid: str | None  # the spend that pays the payout
    txid_url: str | None = None
    recipient_address: str
    source: str
    block_height: int | None
    confirmations: int
    payout_sats: int | None
    created_at: str
    claimed_digit: int | None = None  # vetted: the digit the payment is for (an appeal's claim)
    appeal: bool = False
    vetting: dict[str, Any] | None = None  # vetted: what each check found (novelty, judge, quota)


class SubmissionHistory(BaseModel):
    """One payout address's submissions, newest first, a page at a time (`offset`, `limit`) of `total`."""

    address: str
    total: int
    offset: int
    limit: int
    submissions: list[SubmissionPublic]


class NetworkPublic(BaseModel):
    """Where this service pays: `name` is what a person is shown (testnet, mainnet, or the dev chain that lives
    only on the operator's machine, whose coins are worth nothing); `network` is the addresses it accepts."""

    name: str
    network: str  # testnet or mainnet: a payout address must be of this network
    chain: str  # local (the dev chain) or network (the real BSV network)


class SubmissionRecord(SubmissionPublic):
    """A submission in the audit export: with its pixels."""

    pixels_hex: str


class DeploymentRecord(BaseModel):
    """One contract a bounty has lived in, for the audit export."""

    version: int
    status: str
    model_sha256: str
    deploy_txid: str
    deploy_txid_url: str | None = None
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
    accepted: bool | None = None  # for a bounty: whether a submission would pass the contract's checks
    reason: str | None = None  # why not: the sentence a submission of it would be refused with


class LineageSpend(BaseModel):
    """Paid images and what they cost: the contract's payouts to the submitters and the fees their spends paid."""

    images_bought: int
    sats_spent: int  # payout_sats + fee_sats
    payout_sats: int
    fee_sats: int


class LineageVersion(BaseModel):
    """One model version, the images bought for it (those it was the first to read) with what they cost, and what
    it gained on the held-out crowd images. Accuracies are the integer model's, 0..1; None where nothing measured
    them (the shipped model's crowd figures, runs recorded before the crowd gate)."""

    version: int
    weights_sha256: str
    parent_sha256: str | None
    deployed: bool  # an active deployment's contract is judged by it
    created_at: str
    images_bought: int
    sats_spent: int  # payout_sats + fee_sats
    payout_sats: int
    fee_sats: int
    mnist_test_accuracy: float | None
    crowd_holdout_accuracy_before: float | None  # the champion it replaced, on the held-out crowd images
    crowd_holdout_accuracy_after: float | None  # this version, on the same images
    holdout_gain_points: float | None  # (after - before) * 100
    sats_per_point: float | None  # sats_spent / holdout_gain_points, when the gain is positive
    plot: str | None  # the lineage PNG beside this version's artifact, once written


class ModelLineage(BaseModel):
    """Every model version in version order, the images bought since the newest one read its data (`pending`),
    and the totals, which equal the payouts and fees of every paid image kept for training."""

    versions: list[LineageVersion]
    pending: LineageSpend
    totals: LineageSpend


class RetrainRedeploy(BaseModel):
    """A bounty moved into a contract of the new model by a retraining run."""

    bounty_id: int
    txid: str  # the migration
    txid_url: str | None = None


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


class ChainTxInput(BaseModel):
    """An input of a dev-chain transaction: the output it spends (and its value, when the chain has it)."""

    source_txid: str
    source_txid_url: str | None = None
    source_vout: int
    satoshis: int | None


class ChainTxOutput(BaseModel):
    """An output of a dev-chain transaction: its value, whom it pays (a P2PKH address, else the script's size)
    and the transaction that spent it, if any."""

    vout: int
    satoshis: int
    address: str | None
    script_bytes: int
    spent_by_txid: str | None
    spent_by_txid_url: str | None = None


class ChainTx(BaseModel):
    """One transaction as the embedded dev chain holds it (the page `bounty serve` serves at /chain/tx/{txid})."""

    txid: str
    txid_url: str | None = None  # this page
    state: str  # mempool, mined, ... (marketplace.chain.TxState)
    block_height: int | None
    confirmations: int
    size_bytes: int
    fee_sats: int | None  # inputs minus outputs, when every input's value is known
    inputs: list[ChainTxInput]
    outputs: list[ChainTxOutput]
