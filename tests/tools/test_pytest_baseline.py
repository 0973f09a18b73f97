"""tools.pytest_baseline: `make bench` compares only with a pytest-benchmark run saved on this machine, says so in one
line otherwise, and ends a regression with one line and exit status 1 (not pytest-benchmark's traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch  # noqa: F401  (imported before pytester's in-process runs, which drop modules they imported)
from pytest_benchmark.utils import get_machine_id

from deco_bench.bench import env  # noqa: F401  (the same)
from deco_bench.tools import gate, pytest_baseline as pb  # noqa: F401  (the same)

pytest_plugins = ["pytester"]

HERE = {"device_type": "cpu", "device_name": "AMD EPYC", "device_count": 1, "cpu_model": "AMD EPYC", "cpu_count": 2,
        "torch_threads": 2}
THERE = {**HERE, "device_name": "Intel Xeon", "cpu_model": "Intel Xeon", "cpu_count": 8, "torch_threads": 8}
GPU = {"device_type": "cuda", "device_name": "NVIDIA H200", "device_count": 1, "cpu_model": "Intel Xeon",
       "cpu_count": 16, "torch_threads": 16, "mig": None}
HINT = "record a baseline on this machine with `make bench-baseline`"


def save_run(storage: Path, name: str, hardware: dict | None) -> Path:
    info = {"node": "vm", "cpu": {"brand_raw": "AMD EPYC", "count": 2}}
    if hardware is not None:
        info[pb.STAMP_KEY] = {"hardware": hardware, "torch": "2.14.1", "device": "cpu"}
    path = storage / get_machine_id() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine_info": info, "benchmarks": []}))
    return path


@pytest.fixture
def here(monkeypatch):
    monkeypatch.setattr(pb, "this_machine", lambda: {"hardware": HERE, "torch": "2.14.1", "device": "cpu"})


def test_a_run_of_this_machine_is_compared_with_the_given_tolerance(tmp_path, here, capsys):
    path = save_run(tmp_path, "0001_local.json", HERE)
    assert pb.main(["--storage", str(tmp_path), "--fail", "median:30%"]) == 0
    out, err = capsys.readouterr()
    assert out == f"--benchmark-compare={path} --benchmark-compare-fail=median:30%\n"
    assert err == (f"bench: comparing with {path}, recorded on this machine "
                   f"(CPU 'AMD EPYC' (2 cores, 2 torch threads))\n")


def test_a_run_of_another_machine_is_refused_in_one_line(tmp_path, here, capsys):
    path = save_run(tmp_path, "0001_other.json", THERE)
    assert pb.main(["--storage", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out == ""  # make bench runs the suite without comparing
    assert err == (f"bench: not comparing: {path} was recorded on CPU 'Intel Xeon' (8 cores, 8 torch threads); "
                   f"this machine is CPU 'AMD EPYC' (2 cores, 2 torch threads); {HINT}\n")
    assert pb.main(["--storage", str(tmp_path), "--require"]) == 2
    assert capsys.readouterr().err.startswith(f"bench: error: nothing to compare with (--require): {path} was ")


def test_a_run_saved_without_the_fingerprint_is_not_matched(tmp_path, here, capsys):
    path = save_run(tmp_path, "0001_cpu-embedded.json", None)
    assert pb.main(["--storage", str(tmp_path)]) == 0
    assert capsys.readouterr() == ("", (
        f"bench: not comparing: {path} was saved without deco-bench's hardware fingerprint (pytest-benchmark "
        f"recorded CPU 'AMD EPYC' (2 cores) on host 'vm'), so it cannot be matched to this machine, "
        f"CPU 'AMD EPYC' (2 cores, 2 torch threads); {HINT}\n"))


def test_no_saved_run(tmp_path, here, capsys):
    assert pb.main(["--storage", str(tmp_path)]) == 0
    assert capsys.readouterr() == ("", (
        f"bench: not comparing: no saved pytest-benchmark run in {tmp_path / get_machine_id()}/ (pytest-benchmark "
        f"keeps one folder per OS and Python version); {HINT}\n"))


def test_the_newest_run_of_this_machine_wins_over_newer_runs_of_others(tmp_path, here):
    save_run(tmp_path, "0001_old.json", HERE)
    mine = save_run(tmp_path, "0002_mine.json", HERE)
    save_run(tmp_path, "0003_gpu.json", GPU)
    assert pb.choose(tmp_path, get_machine_id(), pb.this_machine()).path == mine


def test_each_fingerprint_key_decides(tmp_path, here):
    for key, value in [("torch_threads", 1), ("device_type", "cuda"), ("cpu_count", 4)]:
        save_run(tmp_path, "0001_x.json", {**HERE, key: value})
        assert pb.choose(tmp_path, get_machine_id(), pb.this_machine()).path is None, key


def test_a_gpu_machine_is_described_by_its_gpu(tmp_path, here):
    path = save_run(tmp_path, "0001_h200.json", GPU)
    newer = save_run(tmp_path, "0002_xeon.json", THERE)
    c = pb.choose(tmp_path, get_machine_id(), pb.this_machine())
    assert c.path is None and c.reason.startswith(f"{newer} was recorded on CPU 'Intel Xeon'")
    assert c.reason.endswith("(and 1 older saved run(s), none from this machine)")
    assert pb.describe(GPU) == "1x 'NVIDIA H200' with CPU 'Intel Xeon' (16 cores, 16 torch threads)"
    assert pb.describe({**GPU, "mig": "1g.18gb"}).startswith("1x 'NVIDIA H200', MIG 1g.18gb with CPU")
    assert path.is_file()


def test_an_unreadable_saved_file_is_an_error(tmp_path, here, capsys):
    path = tmp_path / get_machine_id() / "0001_broken.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert pb.main(["--storage", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"bench: error: {path}: not a readable pytest-benchmark file (") \
        and err.count("\n") == 1


# ------------------------------------------------------------------------- the pytest hooks, in a real pytest run

TINY_BENCH = """
import time
def test_sleep(benchmark):
    benchmark.pedantic(time.sleep, args=(0.001,), rounds=3)
"""


def _run(pytester, *args):
    return pytester.runpytest_inprocess("-p", "pytest_benchmark.plugin", "-p", "deco_bench.tools.pytest_baseline",
                                        "-p", "no:cacheprovider",
                                        "--benchmark-enable", f"--benchmark-storage=file://{pytester.path / 'st'}",
                                        *args)


@pytest.mark.filterwarnings("ignore:Can't compare")
def test_hooks_stamp_refuse_and_end_a_regression_in_one_line(pytester, monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # the inner run is not an xdist worker: benchmarks on
    # only the two plugins at stake: scanning every installed package for pytest plugins takes seconds
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_tiny=TINY_BENCH)
    assert _run(pytester, "--benchmark-save=x").ret == 0
    (saved,) = (pytester.path / "st").glob("*/0001_x.json")
    doc = json.loads(saved.read_text())
    assert doc["machine_info"][pb.STAMP_KEY]["hardware"] == pb.this_machine()["hardware"]

    # the same machine, but the saved run 10x faster: a regression, one line, exit status 1, no traceback
    for b in doc["benchmarks"]:
        b["stats"].update({k: b["stats"][k] / 10 for k in ("min", "max", "mean", "median", "q1", "q3")})
    fast = pytester.path / "fast.json"
    fast.write_text(json.dumps(doc))
    r = _run(pytester, f"--benchmark-compare={fast}", "--benchmark-compare-fail=median:25%")
    text = r.stdout.str() + r.stderr.str()
    assert r.ret == 1 and "Traceback" not in text
    assert ("bench: 1 benchmark field(s) slower than the saved run by more than --benchmark-compare-fail allows "
            "(listed above): exit status 1") in r.stdout.lines

    # a saved run of other hardware: refused before anything runs
    doc["machine_info"][pb.STAMP_KEY]["hardware"]["cpu_model"] = "Other CPU"
    other = pytester.path / "other.json"
    other.write_text(json.dumps(doc))
    r = _run(pytester, f"--benchmark-compare={other}")
    assert r.ret == pytest.ExitCode.USAGE_ERROR and "Traceback" not in r.stderr.str()
    (line,) = [s for s in r.stderr.lines if s.startswith("ERROR: bench: refusing to compare: the saved run of ")]
    assert " was recorded on CPU 'Other CPU' " in line
    assert line.endswith(f"; {HINT}, or run without --benchmark-compare")

    # --benchmark-compare-fail with nothing to compare: one line before the run, not a traceback after it
    r = _run(pytester, "--benchmark-storage=file://" + str(pytester.path / "empty"), "--benchmark-compare",
             "--benchmark-compare-fail=median:25%")
    assert r.ret == pytest.ExitCode.USAGE_ERROR and "Traceback" not in r.stderr.str()
    assert any(s.startswith("ERROR: bench: --benchmark-compare-fail has no saved run to compare with")
               for s in r.stderr.lines)
