"""Compare pytest-benchmark timings only with a baseline recorded on this machine (`make bench`).

pytest-benchmark files its saved runs by OS and Python version (bench/baselines/pytest/Linux-CPython-3.11-64bit/),
not by machine: a run saved on another CPU or GPU lands in the same folder, and `--benchmark-compare` would report
every difference of hardware as a regression. So each saved run carries deco-bench's hardware fingerprint (the
`hardware` block of bench.env, the keys `deco-bench gate` compares: tools.gate.HARDWARE_KEYS) in its
machine_info, and a run is compared only with a saved run whose fingerprint equals this machine's.

Two halves:
- the command, run by `make bench` before pytest:

      python -m deco_bench.tools.pytest_baseline [--storage bench/baselines/pytest] [--fail median:25%] [--require]

  prints on stdout the pytest options that compare with the newest saved run of this machine
  (`--benchmark-compare=PATH --benchmark-compare-fail=median:25%`), or nothing when there is none; then one line on
  stderr says which machine the saved run came from, which this is, and how to record one here
  (`make bench-baseline`). Exit 0; 2 when a saved file cannot be read, or with --require when there is nothing
  of this machine to compare with.
- pytest hooks, imported by tests/benchmarks/conftest.py: stamp the fingerprint into machine_info; refuse, with one
  line (pytest exit 4), a `--benchmark-compare` against a run of other hardware; and end a run that regressed with
  one line and exit status 1 instead of pytest-benchmark's PerformanceRegression traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from pytest_benchmark.logger import PytestBenchmarkWarning
from pytest_benchmark.session import PerformanceRegression
from pytest_benchmark.utils import get_machine_id

from deco_bench.bench import env as envmod
from deco_bench.io import flatten
from deco_bench.tools.gate import hardware_differences

STAMP_KEY = "deco_bench"  # machine_info[STAMP_KEY] = {"hardware": ..., "torch": ..., "device": ...}
DEFAULT_STORAGE = Path("bench/baselines/pytest")
RECORD_HINT = "record a baseline on this machine with `make bench-baseline`"


class BaselineError(ValueError):
    """A saved file is not a pytest-benchmark run."""


def bench_device():
    """The device tests/benchmarks measure on: CUDA when visible, else CPU."""

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def this_machine() -> dict:
    """deco-bench's fingerprint of this machine for the benchmark device (bench.env; MIG from NVML on CUDA)."""

    device = bench_device()
    env = envmod.fingerprint(device, dtype="bf16" if device.type == "cuda" else "float32", compile=False)
    return {"hardware": env["hardware"], "torch": env["torch"], "device": str(device)}


def describe(hw: dict) -> str:
    """One machine in a few words, naming every key that decides comparability."""
    cpu = f"{hw.get('cpu_count')} cores, {hw.get('torch_threads')} torch threads"
    if hw.get("device_type") == "cuda":
        mig = f", MIG {hw['mig']}" if hw.get("mig") else ""
        return f"{hw.get('device_count')}x {hw.get('device_name')!r}{mig} with CPU {hw.get('cpu_model')!r} ({cpu})"
    return f"CPU {hw.get('cpu_model')!r} ({cpu})"


def describe_unstamped(machine_info: dict) -> str:
    """What pytest-benchmark itself recorded of a machine (a run saved without the deco-bench fingerprint)."""
    cpu = machine_info.get("cpu") or {}
    return f"CPU {cpu.get('brand_raw')!r} ({cpu.get('count')} cores) on host {machine_info.get('node')!r}"


def differences(ours: dict, theirs: dict) -> list[str]:
    """Fingerprint keys that differ (tools.gate's rule, so `make bench` and `deco-bench gate` agree)."""

    return hardware_differences({"env": {"hardware": ours}}, {"env": {"hardware": theirs}})


def saved_runs(storage: Path, machine_id: str) -> list[Path]:
    """pytest-benchmark's saved runs of this OS and Python version, newest (highest number) first."""
    return sorted((storage / machine_id).glob("[0-9][0-9][0-9][0-9]_*.json"), key=lambda p: p.name, reverse=True)


def read_machine_info(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise BaselineError(f"{path}: not a readable pytest-benchmark file ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("machine_info"), dict):
        raise BaselineError(f"{path}: not a pytest-benchmark file (no machine_info)")
    return doc["machine_info"]


def refusal(what: str, machine_info: dict, ours: dict) -> str | None:
    """Why the saved run `what` (its machine_info) may not be compared with this machine, in words; None if it may."""
    stamp = machine_info.get(STAMP_KEY)
    if not isinstance(stamp, dict) or not isinstance(stamp.get("hardware"), dict):
        return (f"{what} was saved without deco-bench's hardware fingerprint (pytest-benchmark recorded "
                f"{describe_unstamped(machine_info)}), so it cannot be matched to this machine, "
                f"{describe(ours['hardware'])}")
    if differences(ours["hardware"], stamp["hardware"]):
        return f"{what} was recorded on {describe(stamp['hardware'])}; this machine is {describe(ours['hardware'])}"
    return None


@dataclass(frozen=True)
class Choice:
    path: Path | None  # the saved run to compare with, or None
    reason: str  # why this one (or why none), in words


def choose(storage: Path, machine_id: str, ours: dict) -> Choice:
    """The newest saved run recorded on this machine, or None and why not."""
    runs = saved_runs(storage, machine_id)
    if not runs:
        return Choice(None, f"no saved pytest-benchmark run in {storage / machine_id}/ (pytest-benchmark keeps one "
                            f"folder per OS and Python version)")
    reasons = []
    for path in runs:
        reason = refusal(str(path), read_machine_info(path), ours)
        if reason is None:
            return Choice(path, f"recorded on this machine ({describe(ours['hardware'])})")
        reasons.append(reason)
    others = f" (and {len(runs) - 1} older saved run(s), none from this machine)" if len(runs) > 1 else ""
    return Choice(None, reasons[0] + others)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m deco_bench.tools.pytest_baseline",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--storage", type=Path, default=DEFAULT_STORAGE, help="pytest-benchmark file storage folder")
    ap.add_argument("--fail", default="median:25%", help="--benchmark-compare-fail expression (default median:25%%)")
    ap.add_argument("--require", action="store_true",
                    help="exit 2 when no saved run of this machine exists (a CI gate that must compare)")
    args = ap.parse_args(argv)
    try:
        choice = choose(args.storage, get_machine_id(), this_machine())
    except BaselineError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
    if choice.path is None:
        what = "error: nothing to compare with (--require)" if args.require else "not comparing"
        print(f"bench: {what}: {choice.reason}; {RECORD_HINT}", file=sys.stderr)
        return 2 if args.require else 0
    print(f"bench: comparing with {choice.path}, {choice.reason}", file=sys.stderr)
    print(f"--benchmark-compare={choice.path} --benchmark-compare-fail={args.fail}")
    return 0


# ---------------------------------------------------------------------------------------------- pytest hooks
# Imported by tests/benchmarks/conftest.py (or loaded with `-p deco_bench.tools.pytest_baseline`).

_STAMP = pytest.StashKey[dict]()
_SESSION = pytest.StashKey[pytest.Session]()


def pytest_configure(config):
    # taken before any test runs: a test may change torch's thread count (part of the fingerprint)
    config.stash[_STAMP] = this_machine()


def pytest_sessionstart(session):
    session.config.stash[_SESSION] = session
    bs = getattr(session.config, "_benchmarksession", None)
    if bs is not None and bs.compare_fail and not bs.compared_mapping:
        # pytest-benchmark would run the whole suite, then raise this from its summary as a traceback
        raise pytest.UsageError(f"bench: --benchmark-compare-fail has no saved run to compare with (in "
                                f"{bs.storage}); {RECORD_HINT}, or run without --benchmark-compare-fail")


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info[STAMP_KEY] = config.stash.get(_STAMP, None) or this_machine()


def _changed_keys(a: dict, b: dict) -> list[str]:
    """Dotted keys whose values differ (through a JSON round trip: a saved tuple reads back as a list)."""

    fa, fb = (flatten(json.loads(json.dumps({k: v for k, v in d.items() if k != STAMP_KEY}, default=str)))
              for d in (a, b))
    return sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))


@pytest.hookimpl(tryfirst=True)
def pytest_benchmark_compare_machine_info(config, benchmarksession, machine_info, compared_benchmark):
    """Refuse a saved run of other hardware (pytest-benchmark only warns); for a run of this machine, replace
    pytest-benchmark's dump of both machine_info dicts (they differ after any kernel update) with one line."""

    ours = machine_info.get(STAMP_KEY) or this_machine()
    saved = compared_benchmark.get("machine_info") or {}
    reason = refusal(f"the saved run of {compared_benchmark.get('datetime', '?')}", saved, ours)
    if reason is not None:
        raise pytest.UsageError(f"bench: refusing to compare: {reason}; {RECORD_HINT}, or run without "
                                f"--benchmark-compare")
    other = _changed_keys(saved, machine_info)
    warnings.filterwarnings("ignore", message="Benchmark machine_info is different", category=PytestBenchmarkWarning)
    print(f"bench: the saved run was recorded on this hardware ({describe(ours['hardware'])})"
          + (f"; pytest-benchmark's machine_info also differs in: {', '.join(other)}" if other else ""),
          file=sys.stderr)


@pytest.hookimpl(wrapper=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """pytest-benchmark signals a regression (and --benchmark-compare-fail without a comparison) by raising out of
    the terminal summary, which pytest prints as an internal-error traceback: make it one line and an exit status
    (1: regression; 4: usage error)."""

    try:
        return (yield)
    except PerformanceRegression:
        n = len(getattr(getattr(config, "_benchmarksession", None), "performance_regressions", []))
        terminalreporter.write_line(f"bench: {n} benchmark field(s) slower than the saved run by more than "
                                    f"--benchmark-compare-fail allows (listed above): exit status 1", red=True)
        config.stash[_SESSION].exitstatus = pytest.ExitCode.TESTS_FAILED
    except pytest.UsageError as e:
        terminalreporter.write_line(f"bench: error: {e}", red=True)
        config.stash[_SESSION].exitstatus = pytest.ExitCode.USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
