"""Errors of the workers.

RetrainError                     a retraining run cannot go on: lease lost, a migration failed
"""

from __future__ import annotations

from model.errors import BountyError


class RetrainError(BountyError):
    """Raised inside a retraining run that cannot go on: another worker took over its expired lease, or a
    bounty's migration to the new model failed (the message names the bounty and the cause). The run is
    recorded as failed and nothing further is deployed."""
