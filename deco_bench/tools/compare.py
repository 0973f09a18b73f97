"""A report across DVC experiments or git revisions, side by side, differences highlighted.

    python -m deco_bench.tools.compare --revs A B [C ...] [--out reports/compare.html]

Data: `dvc exp show --json` (params and the numbers-only metrics files of every experiment and commit: a metric
and its interval bounds as `<key>_lo`/`<key>_hi`). The bootstrap replicates of a model's metrics, and the intervals
its metrics file leaves out, are in the evaluate stage's evaluation/<m>.json, read with `dvc.api.read(path, rev)`
(or from the working tree for "workspace"); without it (not in the local DVC cache) the bounds in the metrics file
are used. `build_compare_context` is the pure part (tested on captured dvc output); a metric difference is marked
significant when it exceeds the bootstrap interval (deco_bench.metrics.api.compare: the interval of the
replicate-wise difference, or non-overlapping intervals without replicates). A `_lo`/`_hi` key is shown in its
metric's row, not as a row of its own.
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
from deco_bench.metrics.api import BOUND_SUFFIXES, compare, unflat_metrics
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


def detail_path(metrics_file: str) -> str | None:
    """The evaluate stage's full result behind a model's metrics file: metrics/<m>.json -> evaluation/<m>.json
    (docs/outputs.md); None for the other metrics files (their bounds are all in the file)."""
    parts = metrics_file.split("/")
    return f"evaluation/{parts[1]}" if len(parts) == 2 and parts[0] == "metrics" and parts[1].endswith(".json") \
        else None


def _bound_keys(flat: dict) -> set[str]:
    """The `<key>_lo`/`<key>_hi` keys of a metrics file whose `<key>` is there too."""
    return {k for k in flat for s in BOUND_SUFFIXES if k.endswith(s) and k[:-len(s)] in flat}


def _with_detail(flat: dict, detail: dict | None) -> dict:
    """compare()'s input for one revision's metrics file: its values and bounds, with the detail's intervals and
    bootstrap replicates where the detail has them."""
    doc = unflat_metrics(flat)
    if isinstance(detail, dict):
        doc["ci"] = {**doc["ci"], **{k: v for k, v in (detail.get("ci") or {}).items() if k in doc["metrics"]}}
        doc["bootstrap"] = {k: v for k, v in (detail.get("bootstrap") or {}).items() if k in doc["metrics"]}
    return doc


def build_compare_context(exp_show: list, revs: list[str], full_metrics: dict[str, dict[str, dict]] | None = None,
                          *, generated_at: str = "") -> dict:
    """Pure: dvc exp show JSON + requested revisions (+ per revision, the detail behind each metrics file:
    {rev: {metrics file: evaluation/<m>.json document}}) -> template context.

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
        docs = [_with_detail(fl, full_metrics.get(r, {}).get(f)) for fl, r in zip(flat, revs)]
        bounds = set().union(*[_bound_keys(fl) for fl in flat])
        keys = sorted(k for k in set().union(*flat) - bounds if any(_is_num(fl.get(k)) for fl in flat))
        for key in keys:
            vals = [fl.get(key) for fl in flat]
            cells = [{"text": fmt(vals[0]) if vals[0] is not None else "absent", "cls": "", "note": ""}]
            ci0 = docs[0]["ci"].get(key)
            if ci0:
                cells[0]["note"] = f"CI {fmt_interval(ci0)}"
            for i in range(1, len(revs)):
                v = vals[i]
                if not (_is_num(v) and _is_num(vals[0])):
                    cells.append({"text": fmt(v) if v is not None else "absent", "cls": "", "note": ""})
                    continue
                d = v - vals[0]
                cls, note = ("changed" if d != 0 else ""), "no interval"
                e = compare(docs[0], docs[i]).get(key, {})
                if e.get("exceeds_interval"):
                    cls, note = "sig", f"exceeds interval {fmt_interval(e.get('interval'))} ({e['method']})"
                elif e.get("exceeds_interval") is False:
                    note = f"within interval {fmt_interval(e.get('interval'))} ({e['method']})"
                ci = docs[i]["ci"].get(key)
                if ci:
                    note = f"CI {fmt_interval(ci)}; " + note
                cells.append({"text": f"{fmt(v)} ({d:+.3g})", "cls": cls, "note": note})
            metric_rows.append({"file": f, "key": key, "name": metric_name(key), "cells": cells})
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
    """{metrics file: its detail} for one revision: evaluation/<m>.json behind each metrics/<m>.json, with the
    intervals and bootstrap replicates the numbers-only metrics file leaves out."""
    out = {}
    for f in ((rec.get("data") or {}).get("metrics") or {}):
        detail = detail_path(f)
        if detail is None:
            continue
        try:
            if rec.get("rev") == "workspace":
                text = (root / detail).read_text()
            else:  # git-tracked or DVC-cached: dvc.api reads either at that revision
                import dvc.api

                text = dvc.api.read(detail, repo=str(root), rev=rec["rev"])
            out[f] = json.loads(text)
        except Exception:  # noqa: BLE001 - any failure: the bounds of the metrics file are used
            continue
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
