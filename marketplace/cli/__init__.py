"""`bounty`: the single command-line entry point. Thin: parse, call library functions, print.

Every command that prints figures takes --json. Errors the project raises on purpose
become one sentence on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import typer

from marketplace.cli import service
from marketplace.cli._output import friendly
from marketplace.cli.chain import chain_app
from marketplace.cli.contract import contract_app
from marketplace.cli.db import db_app
from marketplace.cli.health import health_app
from marketplace.cli.judge import judge_app
from marketplace.cli.lineage import models
from marketplace.cli.model import model_app
from marketplace.cli.operator import register as register_operator_commands
from marketplace.cli.retrain import retrain
from marketplace.cli.review import review_app
from marketplace.cli.wallet import wallet
from marketplace.errors import ConfigError
from marketplace.logs import configure_logging
from marketplace.settings import get_settings

app = typer.Typer(help="digit-bounty: bounties for handwritten digits, judged on-chain.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.add_typer(model_app, name="model")
app.add_typer(judge_app, name="judge")
app.add_typer(contract_app, name="contract")
app.add_typer(db_app, name="db")
app.add_typer(health_app, name="health")
app.add_typer(chain_app, name="chain")
app.add_typer(review_app, name="review")
register_operator_commands(app)
app.command("models")(models)
app.command("serve")(friendly(service.serve))
app.command("daemon")(friendly(service.daemon))
app.command("demo")(friendly(service.demo))
app.command("retrain")(friendly(retrain))
app.command("wallet")(friendly(wallet))


def main() -> None:
    try:
        settings = get_settings()
        configure_logging(settings.log_level, settings.log_format)
    except ConfigError:  # the command itself reports the bad settings, in one sentence
        configure_logging()
    app()


if __name__ == "__main__":
    main()
