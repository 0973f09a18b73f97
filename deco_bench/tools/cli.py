"""`deco-bench`: the command line around the DVC pipeline (profiles, parameter checks, benchmark gate, comparisons)."""

from __future__ import annotations

import argparse
import importlib
import sys

import torch

import deco_bench
from deco_bench import profiles
from deco_bench.config import ConfigError, load_params, required_files
from deco_bench.io import DecoBenchError, sha256_cached
from deco_bench.metrics.weights import check_files, verify_all


def _profile(args: argparse.Namespace) -> int:
    if args.action == "list":
        for name in profiles.available():
            print(name)
        return 0
    if args.name is None:
        print("error: a profile name is needed; available: " + ", ".join(profiles.available()), file=sys.stderr)
        return 2
    if args.action == "use":
        profiles.use(args.name)
        print(f"params.yaml now holds profile {args.name!r}; run `dvc repro` (or `make repro`)")
        return 0
    check = profiles.official_check(args.name)
    print("\n".join(profiles.describe_official_check(check)))
    return 1 if check.mismatches else 0


def _check(args: argparse.Namespace) -> int:
    """Every check a stage would make of the parameters, plus what this machine can honour (and, with --files,
    every file the parameters name), so a paper-scale run fails in seconds, not after hours of training."""
    p = load_params(args.params)
    if p.run.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError([("run.device", "'cuda' is asked for but no CUDA device is visible on this machine")])
    if p.run.device != "cpu" and torch.cuda.is_available() and p.run.nproc > torch.cuda.device_count():
        raise ConfigError([("run.nproc", f"{p.run.nproc} processes per node, but this machine has "
                                         f"{torch.cuda.device_count()} CUDA device(s)")])
    files = ""
    if args.files:
        checks = verify_all(required_files(p), hasher=sha256_cached)
        files = (f"; every one of the {len(checks)} file(s) it names is present (sha256 checked where published)"
                 if checks else "; it names no weights, reference or init_from file")
    print(f"{args.params}: valid (profile {p.run.profile!r}, {len(p.models)} models: {', '.join(p.models)}){files}")
    return 0


def _weights(args: argparse.Namespace) -> int:
    """Every file the parameters (or a profile) name: where it goes, where to get it, present and correct or not."""
    p = profiles.load_profile(args.profile) if args.profile else load_params(args.params)
    files = required_files(p)
    source = f"profile {args.profile!r}" if args.profile else args.params
    if not files:
        print(f"{source} names no weights, reference, checkpoint or init_from file")
        return 0
    verify = args.action == "verify"
    checks = check_files(files, hasher=sha256_cached) if verify else None
    bad = 0
    print(f"{source}: {len(files)} file(s)")
    for i, f in enumerate(files):
        entry = f.entry
        present = f.path.is_file()
        if verify:
            problem = checks[i].problem
            bad += problem is not None
            if problem is not None:
                state = f"PROBLEM: {str(problem).splitlines()[0]}"
            elif entry is not None and entry.sha256:
                state = "present, sha256 matches the published one"
            else:
                state = f"present, sha256 {checks[i].sha256 or sha256_cached(f.path)} (none published: recorded)"
        else:
            state = "present" if present else "MISSING"
            bad += not present
        print(f"- {f.param}: {f.path} [{state}]")
        if entry is not None:
            print(f"    {entry.note}; get it from {entry.url}"
                  + (f"; published sha256 {entry.sha256}" if entry.sha256 else f"; {entry.no_hash_reason}"))
        elif f.what:
            print(f"    {f.what}")
    if bad:
        print(f"{bad} file(s) missing or wrong" + ("" if verify else " (`deco-bench weights verify` checks hashes)"))
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="deco-bench", description=__doc__)
    ap.add_argument("--version", action="version", version=f"deco-bench {deco_bench.__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("profile", help="list, select (use) or check (dry run against the official configs) a profile")
    pr.add_argument("action", choices=["list", "use", "check"])
    pr.add_argument("name", nargs="?")
    pr.set_defaults(fn=_profile)
    ck = sub.add_parser("check", help="validate a parameter file and report every problem at once")
    ck.add_argument("--params", default="params.yaml")
    ck.add_argument("--files", action="store_true",
                    help="also check that every weights/reference/init_from file the parameters name is present and "
                         "has its published sha256")
    ck.set_defaults(fn=_check)
    wt = sub.add_parser("weights", help="list (presence) or verify (sha256) every weights, reference and checkpoint "
                                        "file the parameters or a profile need, with where to get each")
    wt.add_argument("action", choices=["list", "verify"])
    wt.add_argument("--profile", default=None, help="a profile of experiments/ (default: the active params.yaml)")
    wt.add_argument("--params", default="params.yaml")
    wt.set_defaults(fn=_weights)
    gt = sub.add_parser("gate", help="compare a benchmark result with a baseline; exit 1 on a regression",
                        add_help=False)
    gt.set_defaults(fn=None, module="deco_bench.tools.gate")
    cp = sub.add_parser("compare", help="HTML report comparing DVC experiments or git revisions", add_help=False)
    cp.set_defaults(fn=None, module="deco_bench.tools.compare")
    rs = sub.add_parser("results", help="the run's numbers as tidy tables (CSV, Markdown, LaTeX) in reports/tables",
                        add_help=False)
    rs.set_defaults(fn=None, module="deco_bench.tools.results")
    qu = sub.add_parser("queue", help="the profile's models (the ablation grid) as queued DVC experiments run by "
                                      "parallel workers (ablation), and their outputs collected (gather)",
                        add_help=False)
    qu.set_defaults(fn=None, module="deco_bench.tools.queue")
    ev = sub.add_parser("eval", help="score an ADM-format sample .npz against a reference batch (ADM's evaluator, "
                                     "in PyTorch): SAMPLES.npz REF.npz --inception-weights FILE", add_help=False)
    ev.set_defaults(fn=None, module="deco_bench.tools.eval")
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("gate", "compare", "eval", "results", "queue"):  # these parse their own arguments
        return importlib.import_module(sub.choices[argv[0]].get_default("module")).main(argv[1:])
    args = ap.parse_args(argv)
    try:
        return args.fn(args)
    except DecoBenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
