"""`deco-bench`: the command line around the DVC pipeline (profiles, parameter checks, benchmark gate, comparisons)."""

from __future__ import annotations

import argparse
import importlib
import sys

import torch

from deco_bench import profiles
from deco_bench.config import ConfigError, load_params, required_files
from deco_bench.io import DecoBenchError, sha256_cached
from deco_bench.metrics.weights import verify_all


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="deco-bench", description=__doc__)
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
    gt = sub.add_parser("gate", help="compare a benchmark result with a baseline; exit 1 on a regression",
                        add_help=False)
    gt.set_defaults(fn=None, module="deco_bench.tools.gate")
    cp = sub.add_parser("compare", help="HTML report comparing DVC experiments or git revisions", add_help=False)
    cp.set_defaults(fn=None, module="deco_bench.tools.compare")
    ev = sub.add_parser("eval", help="score an ADM-format sample .npz against a reference batch (ADM's evaluator, "
                                     "in PyTorch): SAMPLES.npz REF.npz --inception-weights FILE", add_help=False)
    ev.set_defaults(fn=None, module="deco_bench.tools.eval")
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("gate", "compare", "eval"):  # these parse their own arguments
        return importlib.import_module(sub.choices[argv[0]].get_default("module")).main(argv[1:])
    args = ap.parse_args(argv)
    try:
        return args.fn(args)
    except DecoBenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
