"""Kill anywhere, resume exactly: stage processes killed with SIGKILL (or pre-empted with SIGTERM) at random moments
and re-run with the same command end with the outputs of an uninterrupted run, byte for byte (CPU).

The uninterrupted reference runs are started in the background when the module starts, so they overlap with the
interrupted runs (process start-up, mostly `import torch`, dominates the wall time of these tiny runs).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from _reliability import stage_cmd, start, wait_for
from deco_bench.io import load_npz, safe_torch_load
from deco_bench.stages import _common
from deco_bench.training import checkpoint as ckpt

TIMING_KEYS = {"images_per_s", "elapsed_s"}  # wall-clock fields: the only ones allowed to differ between runs


def train_cmd(pipe: dict, out: Path) -> list[str]:
    return stage_cmd("train", "--params", pipe["params"], "--model", "deco", "--data", pipe["data"], "--out", out,
                     "--summary", out / "train_summary.json")


def sample_cmd(pipe: dict, run_dir: Path) -> list[str]:
    return stage_cmd("sample", "--params", pipe["params"], "--model", "deco", "--run-dir", run_dir,
                     "--preview", run_dir / "preview")


def latest_step(run_dir: Path) -> int:
    found = ckpt.list_checkpoints(run_dir / "ckpt")
    return found[-1][0] if found else 0


def logged_step(run_dir: Path) -> int:
    """The last step in train_log.jsonl (one line per step here; a line cut by a kill is ignored)."""
    try:
        lines = (run_dir / "train_log.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError):
            continue
    return 0


def finish(proc: subprocess.Popen, log: Path, timeout: float = 300.0) -> None:
    rc = proc.wait(timeout=timeout)
    assert rc == 0, f"exit code {rc}:\n{log.read_text()[-3000:]}"


def run_to_end(cmd: list[str], cwd: Path, log: Path) -> None:
    finish(start(cmd, cwd, log), log)


def assert_same_tree(a, b, where: str) -> None:
    """Nested dicts/lists of tensors and plain values are identical (tensors with torch.equal)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys differ"
        for k in a:
            assert_same_tree(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tree(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def log_records(run_dir: Path) -> list[dict]:
    recs = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in recs]


def assert_same_training(run_dir: Path, ref_dir: Path) -> None:
    final, ref = safe_torch_load(run_dir / "final.pt"), safe_torch_load(ref_dir / "final.pt")
    assert final["step"] == ref["step"]
    assert_same_tree(final["ema"], ref["ema"], "final.ema")
    assert final["meta"] == ref["meta"]
    # the resume point: model, REPA projector, EMA and AdamW moments
    assert [s for s, _ in ckpt.list_checkpoints(run_dir / "ckpt")] == [s for s, _ in ckpt.list_checkpoints(ref_dir / "ckpt")]
    last = ckpt.list_checkpoints(run_dir / "ckpt")[-1][1].name
    a, b = ckpt.load_checkpoint(run_dir / "ckpt" / last), ckpt.load_checkpoint(ref_dir / "ckpt" / last)
    for part in ("module", "ema", "optimizer"):
        assert_same_tree(a[part], b[part], f"{last}.{part}")
    for s, f in ckpt.list_checkpoints(ref_dir / "eval_ckpts"):
        assert_same_tree(safe_torch_load(run_dir / "eval_ckpts" / f.name)["ema"], safe_torch_load(f)["ema"],
                         f"eval_ckpts/{f.name}")
    assert {f.name for f in (run_dir / "eval_ckpts").iterdir()} == {f.name for f in (ref_dir / "eval_ckpts").iterdir()}
    # every logged step once, with the same losses (the log of a killed run is cut back to its checkpoint)
    assert log_records(run_dir) == log_records(ref_dir)
    assert not list(run_dir.rglob("*.tmp")), "temporary files of interrupted writes were left behind"


def assert_nothing_partial(run_dir: Path) -> None:
    """After a kill: no final output (the live summary, if any, names a step short of the end), and every
    checkpoint that a resume could pick up is complete."""
    assert not (run_dir / "final.pt").exists() and not (run_dir / "params.json").exists()
    if (run_dir / "train_summary.json").exists():
        assert json.loads((run_dir / "train_summary.json").read_text())["steps"] < 30
    for step, f in ckpt.list_checkpoints(run_dir / "ckpt"):
        assert ckpt.load_checkpoint(f)["step"] == step
    for step, f in ckpt.list_checkpoints(run_dir / "eval_ckpts"):
        assert safe_torch_load(f)["step"] == step


@pytest.fixture(scope="module")
def references(tiny_pipeline):
    """Uninterrupted train and sample runs of the same parameters, running in the background."""
    root = tiny_pipeline["root"]
    ref_sample = root / "ref_sample"
    ref_sample.mkdir()
    shutil.copy(tiny_pipeline["weights"], ref_sample / "final.pt")
    procs = {
        "train": (start(train_cmd(tiny_pipeline, root / "ref_train"), root, root / "ref_train.log"),
                  root / "ref_train.log", root / "ref_train"),
        "sample": (start(sample_cmd(tiny_pipeline, ref_sample), root, root / "ref_sample.log"),
                   root / "ref_sample.log", ref_sample),
    }
    done: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in done:
            proc, log, out = procs[name]
            finish(proc, log)
            done[name] = out
        return done[name]

    yield get
    for proc, _, _ in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow  # four training processes (each pays `import torch`); the reference run overlaps them
def test_train_killed_with_sigkill_at_random_moments_resumes_bit_identically(tiny_pipeline, references):
    root, out, log = tiny_pipeline["root"], tiny_pipeline["root"] / "sigkill", tiny_pipeline["root"] / "sigkill.log"
    rng = random.Random(2511_19365)
    # one random step in each third of the run, then a random fraction of a step: the kill lands mid-step,
    # mid-checkpoint-write or mid-log-line, wherever that is
    targets = [rng.randint(3, 9), rng.randint(11, 18), rng.randint(20, 26)]
    resume_points = []
    for target in targets:
        target = max(target, logged_step(out) + 2)  # past what the previous, killed process already logged
        proc = start(train_cmd(tiny_pipeline, out), root, log)
        wait_for(lambda: logged_step(out) >= target, proc)
        time.sleep(rng.uniform(0.0, 0.03))
        proc.kill()
        rc = proc.wait()
        if rc == 0:  # it finished before the kill landed (slow machine): nothing left to interrupt
            break
        assert rc == -signal.SIGKILL, log.read_text()[-3000:]
        assert_nothing_partial(out)
        resume_points.append(latest_step(out))
    assert len(resume_points) >= 2, f"only {len(resume_points)} kill(s) landed before the run ended"
    assert resume_points == sorted(resume_points) and resume_points[-1] < 30
    run_to_end(train_cmd(tiny_pipeline, out), root, log)
    assert json.loads((out / "params.json").read_text())["resumed_from"] == resume_points[-1]
    assert json.loads((out / "train_summary.json").read_text())["steps"] == 30
    assert_same_training(out, references("train"))


def test_sigterm_checkpoints_at_the_current_step_and_rerun_completes_identically(tiny_pipeline, references):
    root, out, log = tiny_pipeline["root"], tiny_pipeline["root"] / "sigterm", tiny_pipeline["root"] / "sigterm.log"
    proc = start(train_cmd(tiny_pipeline, out), root, log)
    wait_for(lambda: logged_step(out) >= 3, proc)  # past the first checkpoint, usually between two of them
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=120)
    text = log.read_text()
    assert rc == 2, text[-3000:]
    assert "Traceback" not in text
    m = re.search(r"^error: SIGTERM at step (\d+): checkpoint written to .*re-run the same command to resume$",
                  text, flags=re.MULTILINE)
    assert m, text[-3000:]
    stopped = int(m.group(1))
    assert 3 <= stopped < 30
    # the checkpoint is at the step where it stopped, even off the ckpt_every grid
    assert latest_step(out) == stopped
    assert ckpt.load_checkpoint(out / "ckpt" / ckpt.ckpt_name(stopped))["step"] == stopped
    assert [r["step"] for r in log_records(out)] == list(range(1, stopped + 1))
    assert_nothing_partial(out)
    run_to_end(train_cmd(tiny_pipeline, out), root, log)
    assert json.loads((out / "params.json").read_text())["resumed_from"] == stopped
    assert_same_training(out, references("train"))


def _running(pid: int) -> bool:
    """Whether process `pid` still runs (an orphan is reaped by init, or stays a zombie where nothing reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_an_orphaned_trainer_is_named_to_a_second_run_and_ctrl_c_checkpoints_it(tiny_pipeline, references):
    """Killing only `dvc` orphans its stage: a second run of the stage is refused, naming the orphan, instead of
    racing it (no lost log lines); Ctrl-C (SIGINT) then checkpoints the orphan at its current step with one line,
    and the re-run ends identical to an uninterrupted run."""
    root, out, log = tiny_pipeline["root"], tiny_pipeline["root"] / "orphan", tiny_pipeline["root"] / "orphan.log"
    cmd = train_cmd(tiny_pipeline, out)
    launcher = (  # a parent (`dvc repro`) that starts the trainer and is killed once it runs: the trainer lives on
        "import os, subprocess, sys, time\n"
        "with open(sys.argv[2], 'ab') as f:\n"
        "    print(subprocess.Popen(sys.argv[3:], stdout=f, stderr=subprocess.STDOUT).pid, flush=True)\n"
        "while not os.path.exists(sys.argv[1]):\n"
        "    time.sleep(0.005)\n"
        "os._exit(0)")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    pid = int(subprocess.run([sys.executable, "-c", launcher, str(out / "train_log.jsonl"), str(log), *cmd], cwd=root,
                             env=env, check=True, capture_output=True, text=True, timeout=240).stdout)
    try:
        wait_for(lambda: logged_step(out) >= 3 or not _running(pid), None)
        assert _running(pid), log.read_text()[-3000:]
        command = _common.stage_command(["deco_bench/stages/train.py", *cmd[3:]])
        with pytest.raises(_common.StageBusyError) as busy:  # what a second `dvc repro` of the stage meets
            with _common.stage_lock(command, root / _common.LOCK_DIR):
                pass
        assert str(busy.value).startswith(f"this stage is already running in this folder (PID {pid}, parent PID ")
        assert ("ORPHANED: the process that started it (PID " in str(busy.value)
                and f"is gone, but it still runs and writes: stop it with `kill {pid}`" in str(busy.value))
        os.kill(pid, signal.SIGINT)  # Ctrl-C
        wait_for(lambda: not _running(pid), None, timeout=120)
    finally:
        if _running(pid):
            os.kill(pid, signal.SIGKILL)
    text = log.read_text()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-3000:]
    m = re.search(r"^error: SIGINT at step (\d+): checkpoint written to .*re-run the same command to resume$",
                  text, flags=re.MULTILINE)
    assert m, text[-3000:]
    stopped = int(m.group(1))
    assert 3 <= stopped < 30 and latest_step(out) == stopped
    assert [r["step"] for r in log_records(out)] == list(range(1, stopped + 1))  # every step once, none lost
    assert_nothing_partial(out)
    run_to_end(cmd, root, log)
    assert json.loads((out / "params.json").read_text())["resumed_from"] == stopped
    assert_same_training(out, references("train"))


def test_sampling_killed_midway_resumes_from_its_shards_and_gives_the_same_npz(tiny_pipeline, references):
    root = tiny_pipeline["root"]
    run_dir, log = root / "killed_sample", root / "killed_sample.log"
    run_dir.mkdir()
    shutil.copy(tiny_pipeline["weights"], run_dir / "final.pt")
    shards = run_dir / "sample_shards"
    proc = start(sample_cmd(tiny_pipeline, run_dir), root, log)
    wait_for(lambda: any(shards.glob("shard_*.npz")), proc)
    time.sleep(random.Random(7).uniform(0.0, 0.1))
    proc.kill()
    assert proc.wait() == -signal.SIGKILL, "sampling ended before it could be killed"
    assert not (run_dir / "samples.npz").exists() and not (run_dir / "sample_info.json").exists()
    done = sorted(shards.glob("shard_*.npz"))
    assert 1 <= len(done) < 12
    kept = {}
    for f in done:  # every shard that exists is complete: the partial one, if any, is a temporary file
        assert load_npz(f)["arr_0"].shape == (4, 16, 16, 3)
        st = f.stat()
        kept[f.name] = (st.st_ino, st.st_mtime_ns)
    run_to_end(sample_cmd(tiny_pipeline, run_dir), root, log)
    for name, ident in kept.items():  # completed shards were reused, not redone
        st = (shards / name).stat()
        assert (st.st_ino, st.st_mtime_ns) == ident, name
    got = load_npz(run_dir / "samples.npz")
    ref = load_npz(references("sample") / "samples.npz")
    assert got["arr_0"].dtype == np.uint8 and got["arr_0"].shape == (48, 16, 16, 3)
    assert np.array_equal(got["arr_0"], ref["arr_0"]) and np.array_equal(got["labels"], ref["labels"])
    assert not list(run_dir.rglob("*.tmp"))
