"""`make mutants`' figures: killed/total per module of mutmut's last run, and every mutant not killed.

Reads the results mutmut keeps beside its copy of the code (mutants/<module>.py.meta); modules with no
mutant checked yet are left out, so a partial run reports only what it measured.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code


def main(root: Path = Path("mutants")) -> int:
    total_killed = total_checked = 0
    survivors: list[str] = []
    for meta in sorted(root.rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        statuses = Counter(status_by_exit_code[code] for code in codes.values())
        checked = len(codes) - statuses["not checked"]
        if not checked:
            continue
        module = str(meta.relative_to(root))[:-len(".meta")]
        killed = statuses["killed"] + statuses["caught by type check"]
        total_killed, total_checked = total_killed + killed, total_checked + checked
        others = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()) if s not in ("killed", "not checked"))
        unrun = f"; {len(codes) - checked} not run" if checked < len(codes) else ""
        print(f"{module}: {killed}/{checked} killed ({100 * killed / checked:.1f}%)"
              + (f"; {others}" if others else "") + unrun)
        survivors += [f"  {name}: {status_by_exit_code[code]}" for name, code in sorted(codes.items())
                      if status_by_exit_code[code] not in ("killed", "caught by type check", "not checked")]
    if not total_checked:
        print("no mutant checked yet: run `make mutants`")
        return 1
    print(f"all measured: {total_killed}/{total_checked} killed ({100 * total_killed / total_checked:.1f}%)")
    print("\n".join(["not killed (`mutmut show NAME` prints the change):", *survivors]) if survivors else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
