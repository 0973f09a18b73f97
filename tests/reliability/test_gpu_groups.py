"""DECO_BENCH_GPU_GROUPS: concurrent stage processes (queued experiments, docs/queue.md) each hold a group of GPUs of
their own. The allocator is plain flocks, so it is tested on CPU: two holders get different groups, a third waits
(or gives up after its timeout) and gets the group a holder releases, a killed holder frees its group, the claim
survives the torchrun relaunch (exec), and a malformed spec is one line naming the problem."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from _reliability import ROOT, write_params
from deco_bench import config as cfgmod
from deco_bench.stages import _common

GROUPS = [("0", "1"), ("2", "3")]


def _holder(lock_dir: Path, spec: str, then: str = "time.sleep(60)") -> subprocess.Popen:
    """Another process that claims a group of `spec`, prints the devices it got, then runs `then`."""
    code = textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from deco_bench.stages import _common
        claim = _common.claim_gpu_group(_common.parse_gpu_groups({spec!r}), Path({str(lock_dir)!r}), what="holder")
        print(",".join(claim.devices), flush=True)
        {then}
    """)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


@pytest.mark.parametrize("spec, groups", [
    ("0,1;2,3", [("0", "1"), ("2", "3")]),
    (" 0 , 1 ; 2 ", [("0", "1"), ("2",)]),
    ("7", [("7",)]),
    ("GPU-8c1f0e2a-1b2c-3d4e-5f60-718293a4b5c6;MIG-1a2b3c4d-0000-1111-2222-333344445555",
     [("GPU-8c1f0e2a-1b2c-3d4e-5f60-718293a4b5c6",), ("MIG-1a2b3c4d-0000-1111-2222-333344445555",)]),
])
def test_specs_are_parsed_into_groups(spec, groups):
    assert _common.parse_gpu_groups(spec) == groups


@pytest.mark.parametrize("spec, message", [
    ("", "DECO_BENCH_GPU_GROUPS is set but empty"),
    ("0,1;", "group 2 ('') has an empty device"),
    ("0,,1", "group 1 ('0,,1') has an empty device"),
    ("0;1 2", "group 2 ('1 2') has a bad device '1 2'"),
    ("0,1;1,2", "device 1 is in group 1 and group 2; a device may be in one group only"),
])
def test_a_malformed_spec_is_one_line_naming_the_problem(spec, message):
    with pytest.raises(_common.GpuGroupError) as e:
        _common.parse_gpu_groups(spec)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_two_holders_get_different_groups_and_a_third_waits_for_a_release(tmp_path):
    first = _common.claim_gpu_group(GROUPS, tmp_path, what="first")
    second = _common.claim_gpu_group(GROUPS, tmp_path, what="second")
    assert (first.devices, second.devices) == (("0", "1"), ("2", "3"))
    said: list[str] = []
    t0 = time.monotonic()
    with pytest.raises(_common.GpuGroupBusyError) as e:
        _common.claim_gpu_group(GROUPS, tmp_path, timeout=0.3, poll=0.05, say=said.append)
    assert time.monotonic() - t0 >= 0.3
    assert f"PID {os.getpid()}, GPU group 0,1" in str(e.value) and ": first" in str(e.value)
    assert ": second" in str(e.value)
    assert len(said) == 1 and said[0].startswith("waiting for a GPU group: all 2 of DECO_BENCH_GPU_GROUPS are in use")

    threading.Timer(0.3, second.release).start()  # the third waits until the second lets go, then gets its group
    third = _common.claim_gpu_group(GROUPS, tmp_path, timeout=30, poll=0.05, say=said.append)
    assert third.devices == ("2", "3")
    assert said[-1] == "GPU group 2,3 is free now: starting"
    first.release()
    third.release()


def test_a_group_is_claimed_whole_or_not_at_all(tmp_path):
    other = _common.claim_gpu_group([("1",)], tmp_path)  # device 1 is held under another spec
    claim = _common.claim_gpu_group(GROUPS, tmp_path, timeout=0)
    assert claim.devices == ("2", "3")
    # device 0 was locked while group 0,1 was tried, and let go when device 1 turned out to be held
    assert _common.claim_gpu_group([("0",)], tmp_path, timeout=0).devices == ("0",)
    other.release()
    claim.release()


def test_a_killed_holder_frees_its_group_and_other_processes_get_other_groups(tmp_path):
    holder = _holder(tmp_path, "0,1;2,3")
    try:
        assert holder.stdout.readline().strip() == "0,1"
        mine = _common.claim_gpu_group(GROUPS, tmp_path, timeout=0)
        assert mine.devices == ("2", "3")
        with pytest.raises(_common.GpuGroupBusyError, match=r"0,1: PID \d+, GPU group 0,1, since .*: holder"):
            _common.claim_gpu_group(GROUPS, tmp_path, timeout=0)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        assert _common.claim_gpu_group(GROUPS, tmp_path, timeout=5, poll=0.05).devices == ("0", "1")
        mine.release()
    finally:
        holder.kill()
        holder.wait()


def test_a_claim_survives_exec_and_its_children_see_the_group(tmp_path):
    """claim_gpus, as a stage calls it, then an exec like the torchrun relaunch: the exec'd program still holds the
    group, sees CUDA_VISIBLE_DEVICES, and would not claim again (DECO_BENCH_GPU_GROUP is set)."""
    params = write_params(tmp_path / "params.yaml", run={"device": "auto", "nproc": 1})
    after_exec = ("import os, time; print(os.environ['CUDA_VISIBLE_DEVICES'], os.environ['DECO_BENCH_GPU_GROUP'], "
                  "flush=True); time.sleep(60)")
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from deco_bench import config
        from deco_bench.stages import _common
        _common.claim_gpus(config.load_params({str(params)!r}))
        os.execv(sys.executable, [sys.executable, "-c", {after_exec!r}])
    """)
    env = {**os.environ, "DECO_BENCH_GPU_GROUPS": "4,5;6,7", "DECO_BENCH_GPU_LOCK_DIR": str(tmp_path / "locks")}
    env.pop("DECO_BENCH_GPU_GROUP", None)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        assert proc.stdout.readline().split() == ["4,5", "4,5"]
        with pytest.raises(_common.GpuGroupBusyError):
            _common.claim_gpu_group([("4", "5")], tmp_path / "locks", timeout=0)
        assert _common.claim_gpu_group([("4", "5"), ("6", "7")], tmp_path / "locks", timeout=0).devices == ("6", "7")
    finally:
        proc.kill()
        proc.wait()
    assert "GPU group 1 of 2 (DECO_BENCH_GPU_GROUPS): CUDA_VISIBLE_DEVICES=4,5" in proc.stderr.read()


def test_claim_gpus_leaves_cpu_runs_alone_and_checks_the_spec_against_the_parameters(tmp_path, monkeypatch):
    monkeypatch.setenv("DECO_BENCH_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.delenv("DECO_BENCH_GPU_GROUP", raising=False)
    monkeypatch.setattr(_common, "_GPU_CLAIM", None)
    monkeypatch.setenv("DECO_BENCH_GPU_GROUPS", "0,1;2")
    cpu = cfgmod.load_params(write_params(tmp_path / "cpu.yaml"))  # run.device: cpu
    assert _common.claim_gpus(cpu) is None and not list(tmp_path.glob("*.lock"))
    two = cfgmod.load_params(write_params(tmp_path / "two.yaml", run={"device": "auto", "nproc": 2}))
    with pytest.raises(_common.GpuGroupError, match=r"run.nproc is 2 .* has a group of 1 device\(s\) \(2\)"):
        _common.claim_gpus(two)
    monkeypatch.setenv("DECO_BENCH_GPU_LOCK_DIR", "relative/locks")
    with pytest.raises(_common.GpuGroupError, match="is not an absolute path"):
        _common.gpu_lock_dir()


def test_a_stage_with_a_malformed_spec_stops_with_one_line(tmp_path):
    write_params(tmp_path / "params.yaml", run={"device": "auto"})
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DECO_BENCH_GPU_GROUPS": "0,1;1",
           "DECO_BENCH_GPU_LOCK_DIR": str(tmp_path / "locks")}
    env.pop("DECO_BENCH_GPU_GROUP", None)
    proc = subprocess.run([sys.executable, "-m", "deco_bench.stages.inputs", "--out", "inputs"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: DECO_BENCH_GPU_GROUPS='0,1;1': device 1 is in group 1 and group 2; a device may be in one group only"]
    assert not (tmp_path / "inputs").exists()
