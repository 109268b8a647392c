"""Every Celery task has a soft and a hard time limit: retraining long, persistence short, all below the time
after which Redis hands an unacknowledged task to another worker (it would then run twice)."""

from __future__ import annotations

import pytest

from marketplace.settings import Settings
from workers.tasks import app

SHORT = ["bounty.persist_accepted", "bounty.persist_confirmed"]
LONG = ["bounty.retrain", "bounty.maybe_retrain"]


@pytest.mark.parametrize("name", SHORT + LONG)
def test_each_task_has_a_soft_limit_below_its_hard_one(name: str) -> None:
    task = app.tasks[name]
    assert task.soft_time_limit is not None and task.time_limit is not None
    assert 0 < task.soft_time_limit < task.time_limit <= Settings(_env_file=None).task_visibility_timeout  # type: ignore[call-arg]


def test_retraining_has_longer_limits_than_persistence() -> None:
    assert {app.tasks[n].time_limit for n in LONG} == {45 * 60}  # a cycle takes 1.5 to a few minutes here
    assert max(app.tasks[n].time_limit for n in SHORT) <= 90 < min(app.tasks[n].soft_time_limit for n in LONG)


def test_every_task_of_the_app_is_covered() -> None:
    ours = {name for name in app.tasks if name.startswith("bounty.")}
    assert ours == set(SHORT + LONG)
