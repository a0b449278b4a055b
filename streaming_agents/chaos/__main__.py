"""``python -m streaming_agents.chaos [--short] [--secure] [--seed N] ...``: run, print the report.

``--secure``: on the secured broker (SASL_SSL, SCRAM, ACLs), the job as its own
least-privilege principal whose password holds quotes (``make chaos SECURE=1``).

Exits 0 when every guarantee held, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from streaming_agents.chaos import judge, long_plan, run_chaos, short_plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streaming_agents.chaos")
    parser.add_argument("--short", action="store_true", help="the short variant (tests)")
    parser.add_argument(
        "--secure", action="store_true", help="SASL_SSL broker, the job as its own principal"
    )
    parser.add_argument("--seed", type=int, default=None, help="random fault moments")
    parser.add_argument("--keys", type=int, default=None)
    parser.add_argument("--rate", type=float, default=None, help="events per second")
    parser.add_argument("--run-dir", type=Path, default=None, help="default: .run/chaos")
    parser.add_argument("--report", default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    overrides: dict[str, object] = {
        name: value
        for name, value in (
            ("seed", args.seed),
            ("keys", args.keys),
            ("rate", args.rate),
            ("run_dir", args.run_dir),
        )
        if value is not None
    }
    if args.secure:
        overrides["secure"] = True
    plan = short_plan(**overrides) if args.short else long_plan(**overrides)
    started = time.monotonic()
    result = run_chaos(plan, log=lambda line: print(line, flush=True))
    found, report = judge(result)
    print()
    print(report)
    print(f"(wall time {time.monotonic() - started:.0f} s)")
    if args.report:
        with open(args.report, "w") as fh:
            fh.write(report + "\n")
    return 0 if found.ok else 1


if __name__ == "__main__":
    sys.exit(main())
