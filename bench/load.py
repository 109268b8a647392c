"""A bounded load test of a running `bounty serve`, over HTTP on the loopback, then a check of the books.

    python bench/load.py --start                                    # starts its own embedded server
    python bench/load.py --url http://127.0.0.1:8000 --bounty 1 --home ~/.digit-bounty [--database-url URL]

The driver and the books check live in tests/support/load.py (the tests run them too; see its docstring for
what is sent and checked); this script is their command line and report: counts by class, latency
p50/p95/p99 per class, throughput and the verdict, printed as a table and written as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.load import run_load  # noqa: E402 - after the path is set
from tests.support.processes import create_bounty_cli, server_env, start_server  # noqa: E402


def table(result: dict[str, Any]) -> str:
    lines = ["| class | sent | status codes | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|---|---|"]
    for kind, row in result["by_class"].items():
        lat = row["latency_ms"]
        lines.append(f"| {kind} | {row['sent']} | {row['codes']} | {lat['p50']} | {lat['p95']} | {lat['p99']} |")
    lat = result["latency_ms"]
    lines.append(f"| all | {result['answered']} | | {lat['p50']} | {lat['p95']} | {lat['p99']} |")
    books = result["books"] or {}
    lines += ["", f"throughput {result['throughput_rps']} req/s over {result['send_wall_s']} s "
                  f"({result['accepted_per_s']} accepted/s, {result['concurrency']} clients); "
                  f"settled in {result['settle_wait_s']} s more",
              f"books: budget {books.get('budget_sats')} - paid {books.get('paid_sats')} - fees "
              f"{books.get('fees_sats')} = {books.get('remaining_sats')} (API {books.get('api_remaining_sats')}, "
              f"chain {books.get('chain_sats')})",
              f"verdict: {result['verdict'].upper()}" + "".join(f"\n  - {f}" for f in result["failures"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running `bounty serve` (loopback)")
    parser.add_argument("--bounty", type=int, help="the bounty to submit to")
    parser.add_argument("--home", help="the server's BOUNTY_HOME (for the database and chain checks)")
    parser.add_argument("--database-url", help="the server's BOUNTY_DATABASE_URL, if not SQLite under --home")
    parser.add_argument("--start", action="store_true",
                        help="start an embedded `bounty serve` in a fresh BOUNTY_HOME and create the bounty")
    parser.add_argument("--digit", type=int, default=7, help="with --start: the bounty's digit")
    parser.add_argument("--payout", type=int, default=500)
    parser.add_argument("--budget", type=int, default=20_000_000)
    parser.add_argument("--total", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--mix", default="0.3,0.4,0.3", help="accepted,rejected,hostile (fractions or counts)")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "load.json"))
    args = parser.parse_args(argv)
    mix = dict(zip(("accepted", "rejected", "hostile"), (float(v) for v in args.mix.split(",")), strict=True))
    server = None
    started = time.monotonic()
    try:
        if args.start:
            home = Path(tempfile.mkdtemp(prefix="bounty-load-"))
            env = server_env(home / "home")
            bounty = create_bounty_cli(env, [args.digit], args.payout, args.budget)
            server, url = start_server(env, home / "serve.log")
            args.url, args.bounty, args.home = url, bounty["id"], str(home / "home")
            print(f"embedded server {url}, BOUNTY_HOME {args.home}, bounty {args.bounty}", file=sys.stderr)
        if not args.url or not args.bounty:
            parser.error("give --url and --bounty, or --start")
        result = run_load(args.url, args.bounty, args.total, args.concurrency, mix, args.timeout, home=args.home,
                          database_url=args.database_url)
    finally:
        if server is not None:
            server.stop()
    result["total_wall_s"] = round(time.monotonic() - started, 1)
    print(table(result))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"JSON: {out}", file=sys.stderr)
    return 0 if result["verdict"] == "pass" else 1


if __name__ == "__main__":
    sys.exit(main())
