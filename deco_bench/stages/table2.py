"""Stage `table2`: paper Table 2 beside the rows regenerated from the released checkpoints, with a verdict each.

Reads released/results/<row>.json for every row of the `released:` section and writes reports/table2.json and
reports/table2.html. A row is compared with the paper row of the same resolution, epochs, sampler and NFE
(deco_bench/paper.py; Heun with N steps is the paper's 2N x 2 NFE). The verdict is on FID:
- "reproduced": the paper's value lies inside our bootstrap interval, widened by half the paper's printed precision;
- "close": within 5% of the paper's value;
- "differs": further away. Every number is shown with its interval, whatever the verdict.
With no rows (every profile but released-*), both files say so; the stage costs well under a second (no torch).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from deco_bench import paper
from deco_bench.io import DecoBenchError, atomic_write_json, atomic_write_text
from deco_bench.report.render import render

METRICS = [("fid", "FID", True), ("sfid", "sFID", True), ("is", "IS", False), ("precision", "Prec.", False),
           ("recall", "Rec.", False)]
PRINTED_HALF_UNIT = {"fid": 0.005, "sfid": 0.005, "is": 0.5, "precision": 0.005, "recall": 0.005}
CLOSE = 0.05


def paper_row(resolution: int, epochs: int, sampler: str, num_steps: int) -> dict | None:
    table = {256: paper.TABLE2_256, 512: paper.TABLE2_512}.get(resolution, [])
    nfe = f"{2 * num_steps if sampler == 'heun' else num_steps}x2"
    method = "DeCo-XL/16 (Heun)" if sampler == "heun" else "DeCo-XL/16"
    return next((r for r in table if r["method"] == method and r["epochs"] == epochs and r["nfe"] == nfe), None)


def verdict(ours: float, ci: list | None, theirs: float, key: str) -> str:
    if ci:
        lo, hi = ci
        if lo - PRINTED_HALF_UNIT[key] <= theirs <= hi + PRINTED_HALF_UNIT[key]:
            return "reproduced"
    elif abs(ours - theirs) <= PRINTED_HALF_UNIT[key]:
        return "reproduced"
    return "close" if abs(ours - theirs) <= CLOSE * abs(theirs) else "differs"


def build(rows: list[str], resolution: int, folder: Path) -> dict:
    out = []
    for name in rows:
        path = folder / "results" / f"{name}.json"
        try:
            res = json.loads(path.read_text())
            proto, params = res["protocol"], res["row_params"]
            metrics, ci = res["metrics"], res.get("ci", {})
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DecoBenchError(f"{path}: not a released-evaluate result ({e}); re-run released-evaluate@{name}") \
                from e
        ref = paper_row(resolution, params["epochs"], params["sampler"], params["num_steps"])
        cells = []
        for key, label, lower in METRICS:
            if key not in metrics:
                continue
            cell = {"key": key, "label": label, "ours": metrics[key], "ci": ci.get(key), "lower_is_better": lower}
            if ref is not None and ref.get(key) is not None:
                cell.update(paper=ref[key], difference=metrics[key] - ref[key],
                            verdict=verdict(metrics[key], ci.get(key), ref[key], key))
            cells.append(cell)
        fid = next((c for c in cells if c["key"] == "fid"), {})
        out.append({"row": name, "label": res.get("label", name), "paper_method": ref["method"] if ref else None,
                    "epochs": params["epochs"], "sampler": params["sampler"], "num_steps": params["num_steps"],
                    "cfg_scale": params["cfg_scale"], "nfe_per_image": proto.get("nfe_per_image"),
                    "num_images": proto.get("num_images_scored"), "cells": cells,
                    "verdict": fid.get("verdict", "no paper row" if ref is None else "not scored"),
                    "protocol": proto})
    return {"resolution": resolution, "rows": out,
            "rule": "FID verdict: 'reproduced' when the paper's value lies in our bootstrap interval (widened by half "
                    "the printed precision), 'close' within 5%, else 'differs'"}


# the report's classes: ok (green), bad (red), na (grey)
VERDICT_CLASS = {"reproduced": "ok", "close": "na", "differs": "bad", "no paper row": "na", "not scored": "na"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--released", type=Path, default=Path("released"))
    ap.add_argument("--out", type=Path, default=Path("reports/table2.json"))
    ap.add_argument("--html", type=Path, default=Path("reports/table2.html"))
    args = ap.parse_args(argv)
    try:
        raw = yaml.safe_load(Path(args.params).read_text()) or {}
        rows = list((raw.get("released") or {}).keys())
        resolution = int((raw.get("data") or {}).get("resolution", 256))
        table = build(rows, resolution, args.released)
        atomic_write_json(args.out, table)
        atomic_write_text(args.html, render({"title": "Table 2 from the released checkpoints", "t": table,
                                             "metrics": METRICS, "verdict_class": VERDICT_CLASS}, "table2.html"))
    except (DecoBenchError, OSError, yaml.YAMLError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"Table 2: {len(table['rows'])} released row(s) -> {args.out}, {args.html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
