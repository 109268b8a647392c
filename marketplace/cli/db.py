"""`bounty db ...`: apply and inspect schema migrations on the configured database.

The database is the settings' (``BOUNTY_DATABASE_URL``, or ``$BOUNTY_HOME/bounty.sqlite``); the working
directory does not matter. Output never shows the database password.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from marketplace.cli._output import JsonOption, emit, friendly

db_app = typer.Typer(help="The service database: apply and inspect schema migrations.", no_args_is_help=True)


def _report(url: str, revision: str | None) -> dict[str, Any]:
    from marketplace.migrate import display_url, head

    newest = head()
    return {"database": display_url(url), "revision": revision, "head": newest, "up_to_date": revision == newest}


def _database() -> str:
    from marketplace.settings import get_settings

    return get_settings().database


@db_app.command("upgrade")
@friendly
def db_upgrade(
    revision: Annotated[str, typer.Option(help="Revision to migrate up to.")] = "head",
    as_json: JsonOption = False,
) -> None:
    """Migrate the database up to a revision (default: the newest); creates the SQLite file if needed."""
    from marketplace.migrate import upgrade

    url = _database()
    emit(_report(url, upgrade(url, revision)), as_json, "database upgraded")


@db_app.command("downgrade")
@friendly
def db_downgrade(
    revision: Annotated[str, typer.Argument(help='Revision to migrate down to; "base" drops every table.')],
    as_json: JsonOption = False,
) -> None:
    """Migrate the database down to a revision."""
    from marketplace.migrate import downgrade

    url = _database()
    emit(_report(url, downgrade(url, revision)), as_json, "database downgraded")


@db_app.command("current")
@friendly
def db_current(as_json: JsonOption = False) -> None:
    """The database's revision and whether it is the newest."""
    from marketplace.migrate import current

    url = _database()
    emit(_report(url, current(url)), as_json, "database revision")
