"""Errors of the service core (the chain's own are in marketplace.chain.errors).

ConfigError                      the BOUNTY_* settings are invalid (marketplace.settings)
DatabaseError                    the service database cannot do as asked: bad URL, unknown revision (marketplace.db)
└── DatabaseUnavailable          retry later: the database server cannot be reached, or the file stayed locked
ImageError                       an upload is refused: too large, not PNG/JPEG, corrupt, blank (marketplace.images)
ServiceError                     the marketplace refuses a request (caller misuse; the API answers 4xx)
├── NotFound                     no such bounty or submission
├── BountyClosed                 the bounty is exhausted, withdrawn or has no live contract
├── InvalidRequest               malformed input: an address of the wrong network, bad terms
├── RequestTooLarge              the request's body is over the upload limit (marketplace.api.body_limits)
├── RequestTooSlow               the request's body did not arrive within the time limit (ditto)
├── ImageRefused                 the contract would not pay for this image (carries label and margin)
└── SubmissionRefused            vetting refused a vetted bounty's submission (carries its stored receipt)
NoveltyError                     the novelty index refuses: pixels not 784 values in 0..255, a key added twice,
                                 an unreadable index file (marketplace.novelty)
"""

from __future__ import annotations

from typing import Any

from model.errors import BountyError


class ConfigError(BountyError):
    """Raised when the settings (``BOUNTY_*`` variables or ``.env``) fail validation. The message names each
    variable and what is wrong with it, never its value (it may be a secret)."""


class DatabaseError(BountyError):
    """Raised when the service database cannot do what was asked: a malformed URL or missing driver, an unknown
    migration revision, a schema newer than this code. Retrying unchanged will not help. `url` has no password."""

    def __init__(self, message: str, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class DatabaseUnavailable(DatabaseError):
    """Raised when the database cannot answer now (server unreachable or refusing connections, a SQLite file
    locked past the busy timeout): retry later with the same request."""


class ImageError(BountyError):
    """Raised when an uploaded image is refused (caller error, never worth retrying unchanged): too many
    bytes or pixels, not a PNG or JPEG, truncated or corrupt, or blank. The message is one sentence a
    client can be shown as it is (the API layer answers it with a 4xx)."""


class ServiceError(BountyError):
    """Raised when the marketplace refuses a request; nothing was written or paid."""


class NotFound(ServiceError):
    """Raised for an unknown bounty or submission id."""


class BountyClosed(ServiceError):
    """Raised when a bounty cannot take submissions: exhausted, withdrawn, or no live contract."""


class InvalidRequest(ServiceError):
    """Raised for malformed input the schema could not catch: a wrong-network address, impossible terms."""


class RequestTooLarge(ServiceError):
    """Raised when a request's body is over `Settings.max_upload_bytes` (plus room for a form's fields); the
    body is read only up to the limit."""


class RequestTooSlow(ServiceError):
    """Raised when a request's body did not arrive within `Settings.body_timeout_seconds` of its headers."""


class ImageRefused(ServiceError):
    """Raised when the reference model says the contract would refuse the image, before any money moves.
    `appealable`: a vetted bounty would take an appeal of it (the claim is the classifier's close second)."""

    def __init__(self, message: str, label: int, margin: int, appealable: bool = False,
                 digits: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.label = label
        self.margin = margin
        self.appealable = appealable
        self.digits = digits  # the bounty's


class SubmissionRefused(ServiceError):
    """Raised when vetting refuses a vetted bounty's submission; its receipt (the submission, rejected with
    `reason`) is stored. Nothing was paid."""

    def __init__(self, receipt: Any, reason: str) -> None:
        super().__init__(f"submission {receipt.id} was refused: {REASON_TEXT.get(reason, reason)}")
        self.receipt = receipt
        self.reason = reason


REASON_TEXT = {  # why a submission was refused, in words a contributor can act on (the receipt's `reason_text`)
    "wrong_digit": "the classifier read a different digit from the one this bounty pays for",
    "low_margin": "the classifier read the bounty's digit, but not surely enough: its margin was under the "
                  "bounty's minimum",
    "bounty_exhausted": "the bounty ran out of money or closed before it could pay for it",
    "double_spend": "another payment reached the bounty's contract first; send the image again",
    "invalid_script": "the contract refused the payment transaction",
    "chain_too_long": "too many payments were waiting for a block; send the image again in a few minutes",
    "reorged_out": "the block that held the payment was replaced, and the payment went with it",
    "broadcast_failed": "the network refused the payment transaction",
    "duplicate": "you already submitted this image or one very like it",
    "known_image": "this image is (nearly) one of MNIST's, which the model was trained on",
    "claimed_by_another": "someone else submitted this image or one very like it first",
    "judge_disagrees": "the independent judge does not read the claimed digit in it",
    "out_of_distribution": "it does not look like a handwritten digit (blank, noise, stray strokes or tampered)",
    "quota": "the payout address or this client used up its hourly quota; try again later",
    "refused_on_review": "the operator refused the appeal on review",
}


class NoveltyError(BountyError):
    """Raised by the novelty index for caller misuse or a bad file: pixels that are not 784 integers in 0..255,
    a key added twice, keys and images of different counts, an index file that is missing, corrupt or of another
    format. The message is one sentence; retrying unchanged will not help."""
