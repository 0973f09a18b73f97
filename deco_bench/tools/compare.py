"""A report across DVC experiments or git revisions, side by side, differences highlighted.

    python -m deco_bench.tools.compare --revs A B [C ...] [--out reports/compare.html]

Data: `dvc exp show --json` (params and scalar metrics of every experiment and commit) -- DVC drops list values
from metrics, so the bootstrap intervals and replicates are read with `dvc.api.read(metrics/<m>.json, rev)` (or from
the working tree for "workspace"). `build_compare_context` is the pure part (tested on captured dvc output); a
metric difference is marked significant when it exceeds the bootstrap interval (deco_bench.metrics.api.compare:
the interval of the replicate-wise difference, or non-overlapping intervals without replicates).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from deco_bench.io import DecoBenchError, atomic_write_text, flatten
from deco_bench.metrics.api import compare
from deco_bench.report.fmt import fmt, fmt_interval, metric_name
from deco_bench.report.render import render


class RevisionNotFound(DecoBenchError):
    """A requested revision is neither an experiment name, a commit, nor 'workspace' in dvc exp show."""


def _records(exp_show: list) -> list[dict]:
    """Every revision record of dvc exp show's JSON: commits/workspace and the experiments under them."""
    out = []
    for entry in exp_show:
        out.append(entry)
        for exp in entry.get("experiments") or []:
            out.extend(exp.get("revs") or [])
    return out


def find_revision(exp_show: list, rev: str) -> dict:
    """An experiment by name, a commit by (prefix of) sha or branch name, or 'workspace'."""
    records = _records(exp_show)
    for match in (lambda r: r.get("name") == rev, lambda r: r.get("rev") == rev,
                  lambda r: len(rev) >= 4 and str(r.get("rev", "")).startswith(rev)):
        hits = [r for r in records if match(r)]
        if hits:
            return hits[0]
    known = sorted({str(r.get("name") or r.get("rev"))[:12] for r in records})
    raise RevisionNotFound(f"revision {rev!r} not found in `dvc exp show`; known: {', '.join(known)}")


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def build_compare_context(exp_show: list, revs: list[str], full_metrics: dict[str, dict[str, dict]] | None = None,
                          *, generated_at: str = "") -> dict:
    """Pure: dvc exp show JSON + requested revisions (+ full metrics files per revision) -> template context.

    The first revision is the reference; every other column shows its value, the difference and, for metrics
    with bootstrap data in both revisions, whether the difference exceeds the interval.
    """

    if len(revs) < 2:
        raise ValueError(f"a comparison needs at least two revisions, got {revs}")
    recs = [find_revision(exp_show, r) for r in revs]
    full_metrics = full_metrics or {}
    columns = [{"rev": r, "name": rec.get("name") or r, "sha": str(rec.get("rev", ""))[:8],
                "timestamp": (rec.get("data") or {}).get("timestamp") or "uncommitted",
                "error": rec.get("error")} for r, rec in zip(revs, recs)]
    params = [{f"{f}:{k}": v for f, d in ((rec.get("data") or {}).get("params") or {}).items()
               for k, v in flatten(d.get("data") or {}).items()} for rec in recs]
    param_rows, same = [], 0
    for key in sorted(set().union(*params)):
        vals = [p.get(key, "absent") for p in params]
        if all(v == vals[0] for v in vals):
            same += 1
            continue
        param_rows.append({"key": key, "cells": [{"text": json.dumps(v) if not isinstance(v, str) else v,
                                                  "cls": "" if i == 0 else "changed"} for i, v in enumerate(vals)]})
    metric_rows = []
    files = sorted(set().union(*[((rec.get("data") or {}).get("metrics") or {}) for rec in recs]))
    for f in files:
        flat = [flatten((((rec.get("data") or {}).get("metrics") or {}).get(f) or {}).get("data") or {})
                for rec in recs]
        full = [full_metrics.get(r, {}).get(f) for r in revs]
        keys = sorted(k for k in set().union(*flat) if any(_is_num(fl.get(k)) for fl in flat))
        for key in keys:
            vals = [fl.get(key) for fl in flat]
            short = key.split(".", 1)[1] if key.startswith("metrics.") else None
            cells = [{"text": fmt(vals[0]) if vals[0] is not None else "absent", "cls": "", "note": ""}]
            for i in range(1, len(revs)):
                v = vals[i]
                if not (_is_num(v) and _is_num(vals[0])):
                    cells.append({"text": fmt(v) if v is not None else "absent", "cls": "", "note": ""})
                    continue
                d = v - vals[0]
                cls, note = ("changed" if d != 0 else ""), ""
                if short and full[0] and full[i] and short in full[0].get("metrics", {}) \
                        and short in full[i].get("metrics", {}):
                    e = compare(full[0], full[i]).get(short, {})
                    if e.get("exceeds_interval"):
                        cls, note = "sig", f"exceeds interval {fmt_interval(e.get('interval'))} ({e['method']})"
                    elif e.get("exceeds_interval") is False:
                        note = f"within interval {fmt_interval(e.get('interval'))} ({e['method']})"
                    else:
                        note = "no interval"
                    ci = (full[i].get("ci") or {}).get(short)
                    if ci:
                        note = f"CI {fmt_interval(ci)}; " + note
                cells.append({"text": f"{fmt(v)} ({d:+.3g})", "cls": cls, "note": note})
            metric_rows.append({"file": f, "key": key, "name": metric_name(short) if short else key,
                                "cells": cells})
    return {"title": f"deco-bench comparison: {' vs '.join(c['name'] for c in columns)}",
            "generated_at": generated_at, "columns": columns, "param_rows": param_rows, "params_same": same,
            "metric_rows": metric_rows, "errors": [f"{c['name']}: {c['error']}" for c in columns if c["error"]]}


# ------------------------------------------------------------------------------------------------------ I/O


def _run(cmd: list[str], cwd: Path) -> str:
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    except OSError as e:
        raise DecoBenchError(f"could not run {' '.join(cmd)}: {e}") from e
    if r.returncode != 0:
        raise DecoBenchError(f"{' '.join(cmd)} failed: {r.stderr.strip()[-500:]}")
    return r.stdout


def exp_show(root: Path, all_commits: bool = False) -> list:
    # `python -m dvc`: the dvc of this environment, even when its bin folder is not on PATH
    extra = ["--all-commits"] if all_commits else []
    return json.loads(_run([sys.executable, "-m", "dvc", "exp", "show", "--json", *extra], root))


def read_full_metrics(root: Path, rec: dict) -> dict[str, dict]:
    """Metrics files of one revision with their lists (ci, bootstrap), which dvc exp show leaves out."""
    out = {}
    for f in ((rec.get("data") or {}).get("metrics") or {}):
        try:
            if rec.get("rev") == "workspace":
                text = (root / f).read_text()
            else:  # git-tracked or DVC-cached: dvc.api reads either at that revision
                import dvc.api

                text = dvc.api.read(f, repo=str(root), rev=rec["rev"])
            out[f] = json.loads(text)
        except Exception:  # noqa: BLE001 - any failure: this file's differences are shown without significance
            continue  # no intervals for this file: its differences are shown without significance
    return out


def main(argv: list[str] | None = None) -> int:


    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--revs", nargs="+", required=True, help="experiment names, git revisions or 'workspace'")
    ap.add_argument("--out", type=Path, default=Path("reports/compare.html"))
    ap.add_argument("--root", type=Path, default=Path("."))
    args = ap.parse_args(argv)
    try:
        data = exp_show(args.root)
        try:
            recs = [find_revision(data, r) for r in args.revs]
        except RevisionNotFound:
            data = exp_show(args.root, all_commits=True)
            recs = [find_revision(data, r) for r in args.revs]
        full = {r: read_full_metrics(args.root, rec) for r, rec in zip(args.revs, recs)}
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        html = render(build_compare_context(data, args.revs, full, generated_at=now), "compare.html")
        atomic_write_text(args.out, html)
    except (DecoBenchError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(args.out.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
