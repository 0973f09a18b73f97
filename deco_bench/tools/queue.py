"""`deco-bench queue`: the models of a profile (the ablation grid of `ablation-l`) as queued DVC experiments, one
per model, run by parallel workers, and their results gathered into one folder (docs/queue.md).

    deco-bench queue ablation [--models a,b] [--prefix P] [-S KEY=VALUE ...] [-C PATH ...] [--jobs N [--wait]]
                              [--dry-run]
    deco-bench queue gather [--prefix P] [--out reports/queue] [--max-mb 64] [--report]

`ablation` queues `dvc exp run --queue -n <prefix><model> evaluate@<model>` for every model (its train, sample and
evaluate stages; upstream stages committed in dvc.lock are checked out, not re-run), copying in with `-C` the
folder of every file the parameters name (weights, reference batch, init_from: untracked files a queued
experiment's temporary workspace does not have), then `dvc queue start -j N`, and with --wait follows
`dvc queue status` until every one has finished. Each command is printed before it runs; --dry-run only prints.

`gather` reads `dvc exp show --json`, takes each model's experiment (by name) and copies the files its stages
wrote (train/sample/evaluate@<model>, as that experiment's dvc.lock lists them; cached files up to --max-mb) from
the DVC cache into --out at their usual paths, beside params.yaml, so `deco-bench results --root <out>` builds
the tables of every variant; it also writes <out>/experiments.csv and .md: one row per model, its experiment,
commit and numbers. With --report it also makes Tables 1 and 4 (<out>/ablation/tables.json) and the HTML report
(<out>/index.html) of the gathered files, with the library functions the ablation and report stages use.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
import yaml

from deco_bench.config import Params, load_params, required_files
from deco_bench.io import DecoBenchError, atomic_path, atomic_write_json, atomic_write_text, flatten, open_for_write
from deco_bench.report.context import build_context
from deco_bench.report.inputs import PATHS, load_inputs
from deco_bench.report.render import render
from deco_bench.report.steps import StepSource, check_steps
from deco_bench.studies.ablation import build_tables

GPU_GROUPS_ENV = "DECO_BENCH_GPU_GROUPS"  # read by the stages (stages/_common.claim_gpus); workers inherit it
STAGES = ("train", "sample", "evaluate")  # the per-model stages one experiment runs
SHARED = ("prepare", "evalnet")  # upstream stages every experiment needs: run once and commit dvc.lock first
# what the report reads from those shared stages (the same in every experiment: checked out from the base commit)
SHARED_FILES = (PATHS["data_info"], PATHS["heldout"], PATHS["real"])
DONE = ("Success", "Failed")


class QueueError(DecoBenchError):
    """A queue command could not run (dvc failed, an unknown model, an experiment that failed or timed out)."""


# ----------------------------------------------------------------------------------------------------------- pure


def copy_paths(files: list[Path]) -> list[str]:
    """What `-C` must copy for these parameter-named files: each relative file's folder (a queued experiment's
    workspace lacks the folder, and DVC copies a file only into a folder that exists), or the file itself at the
    top level. Absolute paths are read where they are. Folders inside another copied folder are left out."""
    out: list[str] = []
    for f in files:
        if f.is_absolute():
            continue
        parent = f.parent
        out.append(str(f) if str(parent) in ("", ".") else str(parent))
    keep = sorted(set(out))
    return [p for p in keep if not any(p != q and PurePosixPath(p).is_relative_to(q) for q in keep)]


def queue_commands(models: list[str], *, prefix: str = "", sets: list[str] = (), copies: list[str] = (),
                   jobs: int | None = None) -> list[list[str]]:
    """The dvc commands that queue one experiment per model (named <prefix><model>, targeting evaluate@<model>)
    and, with `jobs`, start that many workers."""
    extra = [a for s in sets for a in ("-S", s)] + [a for c in copies for a in ("-C", c)]
    cmds = [["dvc", "exp", "run", "--queue", "-n", f"{prefix}{m}", *extra, f"evaluate@{m}"] for m in models]
    if jobs:
        cmds.append(["dvc", "queue", "start", "-j", str(jobs)])
    return cmds


_STATUS_LINE = re.compile(r"^([0-9a-f]{7})\s+(\S+)\s+.*\s(Queued|Running|Success|Failed)\s*$")


def parse_queue_status(text: str) -> dict[str, str]:
    """`dvc queue status` -> {experiment name: Queued | Running | Success | Failed} (a name queued twice: its latest
    task, the last row)."""
    out = {}
    for line in text.splitlines():
        m = _STATUS_LINE.match(line)
        if m:
            out[m.group(2)] = m.group(3)
    return out


def experiment_records(exp_show: list) -> dict[str, dict]:
    """dvc exp show --json -> {experiment name: its record (rev, data)} for every finished experiment (executor
    state success, or none: run in the workspace); queued, running and failed ones are left out."""
    out = {}
    for entry in exp_show:
        for exp in entry.get("experiments") or []:
            if (exp.get("executor") or {}).get("state", "success") != "success":
                continue
            for rec in exp.get("revs") or []:
                name = rec.get("name") or exp.get("name")
                if name and rec.get("rev") and rec.get("data"):
                    out[name] = rec
    return out


def stage_files(lock: dict, model: str, max_bytes: int) -> tuple[list[str], list[str]]:
    """(files to gather, what is left out and why) of one model's stages in a dvc.lock."""
    take, skip = [], []
    for stage in STAGES:
        for out in (lock.get("stages") or {}).get(f"{stage}@{model}", {}).get("outs") or []:
            path, md5, size = out.get("path"), str(out.get("md5", "")), out.get("size") or 0
            if md5.endswith(".dir"):
                skip.append(f"{path} (a folder)")
            elif size > max_bytes:
                skip.append(f"{path} ({size / 2**20:.0f} MB > --max-mb)")
            else:
                take.append(path)
    return take, skip


def generic_path(path: str, model: str) -> str:
    """metrics/train/deco.json -> metrics/train/{model}.json: a path component named after the model, generic."""
    parts = []
    for part in path.split("/"):
        stem, dot, ext = part.partition(".")
        parts.append("{model}" + dot + ext if stem == model else part)
    return "/".join(parts)


def variant_row(model: str, exp_name: str, rec: dict | None, paths: list[str]) -> dict[str, Any]:
    """One row of experiments.csv: the experiment and the numbers of the metrics files among `paths`, each column
    named by its file with the model's name replaced by {model}, so the rows of different models line up."""
    row: dict[str, Any] = {"model": model, "experiment": exp_name, "rev": (rec or {}).get("rev", "")[:12] or None,
                           "found": rec is not None}
    metrics = ((rec or {}).get("data") or {}).get("metrics") or {}
    for path in paths:
        data = (metrics.get(path) or {}).get("data")
        if not isinstance(data, dict):
            continue
        column = generic_path(path, model)
        for key, value in flatten(data).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                row[f"{column}:{key}"] = value
    return row


# ------------------------------------------------------------------------------------------------------- dvc, git


def _dvc(args: list[str], root: Path) -> str:
    """Run dvc of this environment (`python -m dvc`, even when its bin folder is not on PATH); its stdout.

    Its output goes to files, not pipes: `dvc queue start` forks daemons that keep the output they were given open
    until the workers end, so a pipe would make this call wait for the whole queue.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, stdin=subprocess.DEVNULL, stdout=out,
                              stderr=err, text=True)
        out.seek(0)
        err.seek(0)
        text, errors = out.read(), err.read()
    if proc.returncode != 0:
        last = (errors.strip() or text.strip()).splitlines()[-1:] or ["no output"]
        raise QueueError(f"`dvc {shlex.join(args)}` failed (exit {proc.returncode}): {last[0]}")
    return text


def _committed_stages(root: Path) -> set[str] | None:
    proc = subprocess.run(["git", "show", "HEAD:dvc.lock"], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    return set((yaml.safe_load(proc.stdout) or {}).get("stages") or {})


def _say(line: str) -> None:
    print(line, flush=True)


def _wait(root: Path, names: list[str], timeout: float, poll: float) -> dict[str, str]:
    deadline, last = time.monotonic() + timeout, None
    while True:
        status = parse_queue_status(_dvc(["queue", "status"], root))
        mine = {n: status.get(n, "unknown") for n in names}
        counts = {s: sum(v == s for v in mine.values()) for s in ("Queued", "Running", "Success", "Failed")}
        line = ", ".join(f"{v} {k.lower()}" for k, v in counts.items())
        if line != last:
            _say(f"queue: {line}")
            last = line
        if all(v in DONE for v in mine.values()):
            return mine
        if time.monotonic() > deadline:
            raise QueueError(f"not finished after {timeout:g} s ({line}); `dvc queue status` follows them, "
                             f"`dvc queue kill NAME` stops one")
        time.sleep(poll)


# ------------------------------------------------------------------------------------------------------- commands


def ablation(args: argparse.Namespace) -> int:
    root = Path(args.root)
    p = load_params(root / args.params)
    models = list(p.models)
    if args.models:
        wanted = [m.strip() for m in args.models.split(",") if m.strip()]
        unknown = [m for m in wanted if m not in p.models]
        if unknown:
            raise QueueError(f"--models: {', '.join(unknown)} not in {args.params} (models: {', '.join(models)})")
        models = wanted
    named = [f.path for f in required_files(p)]
    missing = [str(f) for f in named if not (f if f.is_absolute() else root / f).exists()]
    if missing:
        raise QueueError(f"the parameters name file(s) that are not here: {', '.join(missing)} "
                         f"(`deco-bench weights list`); a queued experiment could not read them either")
    copies = list(dict.fromkeys(copy_paths(named) + list(args.copy or [])))
    committed = _committed_stages(root)
    if committed is None or not set(SHARED) <= committed:
        _say(f"note: the committed dvc.lock has no {' and '.join(SHARED)}: every experiment would run them itself; "
             f"run `dvc repro {' '.join(SHARED)}` and commit dvc.lock first")
    if args.jobs and args.jobs > 1 and p.run.device != "cpu":
        spec = os.environ.get(GPU_GROUPS_ENV)
        _say(f"workers inherit {GPU_GROUPS_ENV}={spec}: each stage process holds one group" if spec else
             f"note: {GPU_GROUPS_ENV} is not set: on a GPU machine the {args.jobs} workers would share every GPU; "
             f"e.g. {GPU_GROUPS_ENV}='0,1;2,3;4,5;6,7' gives each running stage two GPUs of its own")
    if args.jobs and not args.dry_run and shutil.which("dvc") is None:
        raise QueueError("`dvc queue start` starts its workers as `dvc` from PATH, and there is none: activate the "
                         "environment first (source .venv/bin/activate)")
    cmds = queue_commands(models, prefix=args.prefix, sets=args.set or [], copies=copies, jobs=args.jobs)
    for cmd in cmds:
        _say(f"$ {shlex.join(cmd)}")
        if not args.dry_run:
            _dvc(cmd[1:], root)
    names = [f"{args.prefix}{m}" for m in models]
    if args.dry_run:
        return 0
    if not args.jobs:
        _say("queued; start the workers with `dvc queue start -j N`")
        return 0
    if args.wait:
        final = _wait(root, names, args.timeout, args.poll)
        failed = [n for n, s in final.items() if s != "Success"]
        if failed:
            raise QueueError(f"{len(failed)} experiment(s) failed: {', '.join(failed)} (`dvc queue logs NAME`)")
        _say(f"done: {len(names)} experiment(s); `dvc exp show` lists them, `deco-bench queue gather"
             f"{f' --prefix {args.prefix}' if args.prefix else ''}` collects their outputs")
    else:
        _say("running; follow with `dvc queue status` (logs: `dvc queue logs NAME`), then `deco-bench queue gather`")
    return 0


def gather(args: argparse.Namespace) -> int:
    root = Path(args.root)
    out = Path(args.out) if args.out else root / "reports" / "queue"
    p = load_params(root / args.params)
    records = experiment_records(_exp_show(root))
    from dvc.api import DVCFileSystem  # heavy: only this command needs it

    rows, total, first, max_bytes = [], 0, None, int(args.max_mb * 2**20)
    for model in p.models:
        name = f"{args.prefix}{model}"
        rec = records.get(name)
        if rec is None:
            _say(f"{model}: no finished experiment named {name!r} on this commit (`dvc exp show` lists them; "
                 f"failed and running ones: `dvc queue status`)")
            rows.append(variant_row(model, name, None, []))
            continue
        lock_text = subprocess.run(["git", "show", f"{rec['rev']}:dvc.lock"], cwd=root, capture_output=True,
                                   text=True).stdout
        take, skip = stage_files(yaml.safe_load(lock_text) or {}, model, max_bytes)
        fs = DVCFileSystem(str(root), rev=rec["rev"])
        shared = []
        if first is None:  # the parameters the experiments ran with (-S included), and the shared stages' files
            first, shared = name, ["params.yaml", *SHARED_FILES]
        got = []
        for path in shared + take:
            try:
                size = fs.info(path).get("size") or 0
                if size > max_bytes:
                    skip.append(f"{path} ({size / 2**20:.0f} MB > --max-mb)")
                    continue
                data = fs.read_bytes(path)
            except FileNotFoundError:  # an output DVC does not cache (cache: false): not kept by the experiment
                skip.append(f"{path} (not cached)")
                continue
            with atomic_path(out / path) as tmp, open_for_write(tmp) as f:
                f.write(data)
            got.append(path)
        total += len(got)
        _say(f"{model}: {name} ({rec['rev'][:7]}): {len(got)} file(s)"
             + (f"; left out: {', '.join(skip)}" if skip else ""))
        rows.append(variant_row(model, name, rec, [f for f in got if f not in shared]))
    if first is None:  # nothing gathered: the model list of this workspace, for the table
        atomic_write_text(out / "params.yaml", (root / args.params).read_text())
    else:
        _say(f"params.yaml, {', '.join(SHARED_FILES)}: from {first}")
    df = pd.DataFrame(rows)
    atomic_write_text(out / "experiments.csv", df.to_csv(index=False))
    atomic_write_text(out / "experiments.md", df.to_markdown(index=False) + "\n")
    found = int(df["found"].sum())
    _say(f"{found} of {len(rows)} model(s) gathered ({total} files) into {out}/: experiments.csv, experiments.md; "
         f"tables: `deco-bench results --root {out}`")
    if found < len(rows):
        return 1
    if args.report:
        report(out)
    return 0


def report(out: Path) -> None:
    """Tables 1 and 4 (ablation/tables.json) and the HTML report of the gathered folder, as the ablation and report
    stages make them from a sequential run; the stages no experiment ran (convergence, spectrum, bench) are stated
    as not run in their sections."""
    p: Params = load_params(out / "params.yaml")
    evaluations = {}
    for m in p.models:
        path = out / "evaluation" / f"{m}.json"
        try:
            evaluations[m] = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise QueueError(f"{path}: no readable evaluation of {m!r} ({e}); the report needs every model's") from e
    check_steps([(StepSource(f"evaluation/{m}.json", "train_step", f"evaluate@{m}"), doc)
                 for m, doc in evaluations.items()], p.train.steps)
    atomic_write_json(out / PATHS["ablation"], build_tables(evaluations, p, metric=p.ablation.metric,
                                                           train_steps=p.train.steps))
    inputs = load_inputs(out, per_class=p.report.per_class, max_classes=p.report.max_classes)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    atomic_write_text(out / "index.html", render(build_context(inputs, tolerance=p.report.tolerance,
                                                               generated_at=now)))
    _say(f"report: {out / 'index.html'} (Tables 1 and 4: {out / PATHS['ablation']}); convergence, spectrum and "
         f"bench need the sequential run")


def _exp_show(root: Path) -> list:
    text = _dvc(["exp", "show", "--json"], root)
    try:
        return json.loads(text)
    except ValueError as e:
        raise QueueError(f"`dvc exp show --json` gave no JSON ({e}): {text.strip()[:200]}") from e


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="deco-bench queue", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="action", required=True)
    ab = sub.add_parser("ablation", help="queue one DVC experiment per model (train, sample, evaluate), start workers")
    ab.add_argument("--models", default="", help="comma-separated keys of `models` (default: all of them)")
    ab.add_argument("--prefix", default="", help="experiment names: <prefix><model> (default: the model name)")
    ab.add_argument("-S", "--set", action="append", metavar="KEY=VALUE",
                    help="a parameter for every queued experiment (dvc exp run -S); repeatable")
    ab.add_argument("-C", "--copy", action="append", metavar="PATH",
                    help="another untracked path to copy into each experiment's workspace (dvc exp run -C); "
                         "the folders of the files the parameters name are copied without it")
    ab.add_argument("--jobs", "-j", type=int, default=None, help="start this many workers (dvc queue start -j)")
    ab.add_argument("--wait", action="store_true", help="with --jobs: follow `dvc queue status` until all finished")
    ab.add_argument("--timeout", type=float, default=7 * 24 * 3600, help="--wait gives up after this many seconds")
    ab.add_argument("--poll", type=float, default=10.0, help="--wait checks the queue every this many seconds")
    ab.add_argument("--dry-run", action="store_true", help="print the commands, run none")
    ab.set_defaults(fn=ablation)
    ga = sub.add_parser("gather", help="copy each model's experiment outputs into one folder; experiments.csv")
    ga.add_argument("--prefix", default="")
    ga.add_argument("--out", default=None, help="default: <root>/reports/queue")
    ga.add_argument("--max-mb", type=float, default=64.0, help="leave out files larger than this (weights)")
    ga.add_argument("--report", action="store_true",
                    help="also Tables 1 and 4 (ablation/tables.json) and the HTML report (index.html) of the gathered "
                         "folder, when every model was found")
    ga.set_defaults(fn=gather)
    for p in (ab, ga):
        p.add_argument("--root", default=".", help="the repository (default: here)")
        p.add_argument("--params", default="params.yaml", help="relative to --root")
    args = ap.parse_args(argv)
    if getattr(args, "jobs", None) is not None and args.jobs < 1:
        ap.error("--jobs must be at least 1")
    try:
        return args.fn(args)
    except DecoBenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
