"""`deco-bench results`: the run's numbers as tidy tables (pandas) in CSV, Markdown and LaTeX, for papers and notes.

Reads the stage outputs of docs/outputs.md for the models of params.yaml and writes, into --out (default
reports/tables/), one file per table and format:

- `models`: every metric of every model, with its 95% bootstrap interval (evaluation/<m>.json);
- `pairs`: DeCo minus each other model, with the interval of the difference and whether it excludes 0
  (metrics.api.compare, as the report computes it);
- `table2`: paper Table 2 beside the rows regenerated from the released checkpoints (reports/table2.json), when
  the table2 stage ran with rows;
- `efficiency`: training images/s and sampling seconds per image per model (bench/results.json).

Numbers are written unrounded to CSV (the round trip gives the report's numbers back) and rounded to --digits in
Markdown and LaTeX. A table whose inputs are absent is skipped with one line saying which file is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import yaml

from deco_bench.io import DecoBenchError, atomic_write_text
from deco_bench.metrics.api import compare

FORMATS = ("csv", "md", "tex")


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise DecoBenchError(f"{path}: not readable JSON ({e})") from e


def models_table(root: Path, names: list[str]) -> pd.DataFrame | None:
    rows = []
    for m in names:
        doc = _json(root / "evaluation" / f"{m}.json")
        if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), dict):
            continue
        for key, value in doc["metrics"].items():
            lo, hi = (doc.get("ci") or {}).get(key) or (None, None)
            rows.append({"model": m, "label": doc.get("label", m), "scale": doc.get("scale"), "metric": key,
                         "value": value, "ci_lo": lo, "ci_hi": hi, "num_images": doc.get("num_images")})
    return pd.DataFrame(rows) if rows else None


def pairs_table(root: Path, names: list[str], deco: str) -> pd.DataFrame | None:
    docs = {m: _json(root / "evaluation" / f"{m}.json") for m in names}
    if not isinstance(docs.get(deco), dict):
        return None
    rows = []
    for other, doc in docs.items():
        if other == deco or not isinstance(doc, dict):
            continue
        for key, c in compare(doc, docs[deco]).items():
            lo, hi = c["interval"] or (None, None)
            rows.append({"deco": deco, "other": other, "metric": key, "other_value": c["a"], "deco_value": c["b"],
                         "difference": c["difference"], "diff_lo": lo, "diff_hi": hi, "method": c["method"],
                         "exceeds_interval": c["exceeds_interval"], "lower_is_better": c["lower_is_better"]})
    return pd.DataFrame(rows) if rows else None


def table2_table(root: Path) -> pd.DataFrame | None:
    doc = _json(root / "reports" / "table2.json")
    if not isinstance(doc, dict) or not doc.get("rows"):
        return None
    rows = []
    for r in doc["rows"]:
        for c in r["cells"]:
            lo, hi = c.get("ci") or (None, None)
            rows.append({"row": r["row"], "label": r["label"], "epochs": r["epochs"], "sampler": r["sampler"],
                         "num_steps": r["num_steps"], "nfe_per_image": r["nfe_per_image"], "metric": c["key"],
                         "ours": c["ours"], "ci_lo": lo, "ci_hi": hi, "paper": c.get("paper"),
                         "difference": c.get("difference"), "verdict": c.get("verdict"), "row_verdict": r["verdict"]})
    return pd.DataFrame(rows)


def efficiency_table(root: Path) -> pd.DataFrame | None:
    doc = _json(root / "bench" / "results.json")
    if not isinstance(doc, dict) or not isinstance(doc.get("cases"), dict):
        return None
    rows = []
    for case_id, case in doc["cases"].items():
        for m, entry in (case.get("models") or {}).items():
            train = entry.get("train") or {}
            row = {"case": case_id, "model": m, "params": entry.get("params"),
                   "train_images_per_s": (train.get("images_per_s") or {}).get("median"),
                   "train_s_per_iter": (train.get("s_per_iter") or {}).get("median"), "mfu": train.get("mfu")}
            for setting, batches in (entry.get("sample") or {}).items():
                for batch, x in batches.items():
                    row[f"sample_{setting}_{batch}_s_per_image"] = (x.get("s_per_image") or {}).get("median")
            rows.append(row)
    return pd.DataFrame(rows) if rows else None


def write_table(df: pd.DataFrame, stem: Path, digits: int) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    rounded = df.round(digits)
    for fmt in FORMATS:
        path = stem.with_suffix(f".{fmt}")
        if fmt == "csv":
            text = df.to_csv(index=False)
        elif fmt == "md":
            text = rounded.to_markdown(index=False) + "\n"
        else:
            text = rounded.to_latex(index=False, float_format=f"%.{digits}f", na_rep="--")
        atomic_write_text(path, text)
        out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="deco-bench results", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("."), help="the repository whose outputs are read")
    ap.add_argument("--out", type=Path, default=None, help="folder for the tables (default: <root>/reports/tables)")
    ap.add_argument("--digits", type=int, default=3, help="decimals in the Markdown and LaTeX files")
    args = ap.parse_args(argv)
    root, out = args.root, args.out or args.root / "reports" / "tables"
    try:
        params = yaml.safe_load((root / "params.yaml").read_text()) or {}
        names = [str(m) for m in (params.get("models") or {})]
        deco = str((params.get("convergence") or {}).get("deco", "deco"))
        tables = {"models": (models_table(root, names), "evaluation/<model>.json"),
                  "pairs": (pairs_table(root, names, deco), f"evaluation/{deco}.json and another model's"),
                  "table2": (table2_table(root), "reports/table2.json with released rows"),
                  "efficiency": (efficiency_table(root), "bench/results.json")}
        written = 0
        for name, (df, source) in tables.items():
            if df is None:
                print(f"{name}: skipped (no {source})")
                continue
            paths = write_table(df, out / name, args.digits)
            written += 1
            print(f"{name}: {len(df)} rows -> {', '.join(str(p) for p in paths)}")
    except (DecoBenchError, OSError, yaml.YAMLError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not written:
        print("error: no stage output found to tabulate (run the pipeline first)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
