"""A second run of the same stage in one folder stops at once, naming the holder; nothing is written by it, and a
killed holder leaves no stale lock (the kernel drops an flock with its process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from _reliability import ROOT, write_params
from deco_bench.stages import _common


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".deco_bench" not in p.parts}


def run_stage(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "deco_bench.stages.inputs", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_second_run_of_a_stage_stops_with_one_line_naming_the_holder(tmp_path):
    write_params(tmp_path / "params.yaml")
    command = _common.stage_command(["deco_bench/stages/inputs.py", "--out", "inputs"])
    before = tree(tmp_path)
    with _common.stage_lock(command, tmp_path / _common.LOCK_DIR):
        busy = run_stage(tmp_path, "--out", "inputs")
    assert busy.returncode == 2, busy.stderr
    (line,) = busy.stderr.strip().splitlines()
    assert line.startswith(f"error: this stage is already running in this folder (PID {os.getpid()}, parent PID "
                           f"{os.getppid()}, started ")
    assert line.endswith(f"{command}); a second pipeline run would write the same outputs: wait for it or stop it, "
                         "then run again")
    assert tree(tmp_path) == before  # the refused run wrote nothing
    done = run_stage(tmp_path, "--out", "inputs")  # the holder is gone: the lock is free again
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "inputs" / "evaluate.json").exists()


def test_other_commands_and_a_killed_holder_do_not_block(tmp_path):
    lock_dir = tmp_path / "locks"
    with _common.stage_lock("python -m deco_bench.stages.train --model deco", lock_dir):
        with _common.stage_lock("python -m deco_bench.stages.train --model baseline", lock_dir):
            pass  # another model's stage is another command: both run
        with pytest.raises(_common.StageBusyError, match="already running"):
            with _common.stage_lock("python -m deco_bench.stages.train --model deco", lock_dir):
                pass
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from deco_bench.stages import _common; "
        "from pathlib import Path\n"
        "with _common.stage_lock('cmd', Path(sys.argv[2])):\n    print('held', flush=True); time.sleep(60)"),
        str(ROOT), str(lock_dir)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(_common.StageBusyError):
        with _common.stage_lock("cmd", lock_dir):
            pass
    holder.kill()
    holder.wait()
    with _common.stage_lock("cmd", lock_dir):  # no stale lock after a kill -9
        pass
