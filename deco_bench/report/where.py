"""`python -m deco_bench.report.where`: print the absolute path of the rendered report (the last line of make repro)."""

from __future__ import annotations

import sys
from pathlib import Path

DEFAULT = Path("reports/index.html")


def main(argv: list[str] | None = None) -> int:
    path = Path(argv[0] if argv else DEFAULT).resolve()
    if not path.exists():
        print(f"error: no report at {path} (run `make repro`, or `python -m deco_bench.stages.report`)",
              file=sys.stderr)
        return 1
    print(f"Report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
