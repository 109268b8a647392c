"""`bounty health ...`: liveness checks for container healthchecks (exit code 0 healthy, 1 not, one sentence).

The worker and beat are checked by Celery itself (`celery inspect ping`, which beat answers only while its
scheduler ticks); the daemon has no mailbox, so it leaves a heartbeat file that this command reads.
"""

from __future__ import annotations

from typing import Annotated

import typer

from marketplace.cli._output import fail, friendly

health_app = typer.Typer(help="Liveness checks for healthchecks: exit code 0 when healthy.", no_args_is_help=True)


@health_app.command("daemon")
@friendly
def daemon_health(
    max_age: Annotated[float, typer.Option(min=1, help="Seconds since the watcher's last completed step "
                                                        "beyond which the daemon counts as unhealthy.")] = 120,
) -> None:
    """Healthy when `bounty daemon`'s watcher completed a step within --max-age seconds."""
    from marketplace.heartbeat import heartbeat_path, seconds_since_beat
    from marketplace.settings import get_settings

    path = heartbeat_path(get_settings().home)
    age = seconds_since_beat(path)
    if age is None:
        fail(f"the daemon has not completed a step yet (no heartbeat at {path})", as_json=False)
    if age > max_age:
        fail(f"the daemon's last completed step was {age:.0f} s ago (the limit is {max_age:.0f} s)", as_json=False)
    typer.echo(f"daemon healthy: last step {age:.1f} s ago")
