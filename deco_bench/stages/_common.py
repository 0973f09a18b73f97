"""What every stage shares: argument parsing, strict parameter loading, threads, progress bars, clear errors."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from deco_bench.config import ConfigError, Params, load_params, to_dict
from deco_bench.io import DISK_FULL_ERRNOS, DecoBenchError, DiskSpaceError, atomic_write_json, sha256_file
from deco_bench.io import remove_temporaries as io_remove_temporaries


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="parameter file (default: params.yaml)")
    return p


def setup(params_path: str) -> Params:
    params = load_params(params_path)
    check_device(params)
    if params.run.threads > 0:
        torch.set_num_threads(params.run.threads)
    return params


def check_device(params: Params) -> None:
    """What this machine can honour, checked when a stage starts (the parameters may come from another machine)."""
    if params.run.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError([("run.device", "'cuda' is asked for but no CUDA device is visible on this machine; set "
                                          "run.device to auto or cpu, or run on a machine with a GPU")])


def remove_temporaries(*folders: Path, names: tuple[str, ...] | None = None) -> None:
    """Delete the temporary files that killed writers left in this stage's output folders (under the stage lock,
    so no other run of this stage is writing them), so none can reach a DVC output."""
    for folder in folders:
        for stale in io_remove_temporaries(folder, names):
            print(f"removed {stale}, a temporary file left by an interrupted run", file=sys.stderr)


def write_resolved(path: str | Path, params: Params, **extra: Any) -> None:
    """Every stage writes the parameters it ran with next to its outputs."""
    atomic_write_json(path, {"params": to_dict(params), **extra})


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def progress_bar(total: int, desc: str, unit: str = "it", initial: int = 0, disable: bool = False):
    return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=disable, dynamic_ncols=True,
                file=sys.stderr, mininterval=1.0)


LOCK_DIR = Path(".deco_bench") / "locks"


class StageBusyError(DecoBenchError):
    """The same stage command is already running in this folder (another `dvc repro`, or a stage run by hand)."""


def stage_command(argv: list[str] | None = None) -> str:
    """The command a stage process runs (module and arguments): two runs of it in one folder write the same outputs."""
    argv = sys.argv if argv is None else argv  # argv[0]: the stage module's file (python -m deco_bench.stages.X)
    return " ".join([f"python -m deco_bench.stages.{Path(argv[0]).stem}", *argv[1:]])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _parent_of(pid: int) -> int | None:
    """The current parent of `pid` (Linux /proc), or None where that cannot be read."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _describe_holder(text: str) -> str:
    """The lock file's record of its holder, and whether the process that started it (dvc, a shell) is gone."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    if not first:
        return "a process that has not written its name yet"
    m = re.match(r"PID (\d+), parent PID (\d+),", first)
    if m and (not _alive(int(m.group(2))) or _parent_of(int(m.group(1))) not in (None, int(m.group(2)))):
        return (f"{first}; ORPHANED: the process that started it (PID {m.group(2)}, e.g. a killed `dvc repro`) is "
                f"gone, but it still runs and writes: stop it with `kill {m.group(1)}` (it checkpoints first) or "
                f"let it finish")
    return first


@contextlib.contextmanager
def stage_lock(command: str, folder: Path = LOCK_DIR):
    """Hold an exclusive lock for `command` in this folder, or raise StageBusyError naming the holder.

    The lock is an flock on .deco_bench/locks/<hash of the command>.lock: the kernel drops it when the holder exits,
    however it exits (a kill -9 or a killed `dvc` leaves no stale lock), and the file records who holds it: its
    PID and its parent's, so a holder whose `dvc` was killed (an orphan, still writing) is named as such.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (hashlib.sha256(command.encode()).hexdigest()[:16] + ".lock")
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = _describe_holder(f.read())
            raise StageBusyError(f"this stage is already running in this folder ({holder}); a second pipeline run "
                                 f"would write the same outputs: wait for it or stop it, then run again") from None
        try:
            f.seek(0)
            f.truncate()
            f.write(f"PID {os.getpid()}, parent PID {os.getppid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                    f"{command}\n")
            f.flush()
        except OSError as e:
            if e.errno in DISK_FULL_ERRNOS:
                raise DiskSpaceError(f"{path}: the disk is full ({e.strerror}): free some space and run the same "
                                     f"command again") from e
            raise
        try:
            yield
        finally:
            f.truncate(0)


def main_wrapper(fn: Callable[[], None]) -> None:
    """Run a stage under its lock (one run of a stage command per folder at a time; torchrun's other ranks run
    under rank 0's); a DecoBenchError is printed as one clear message (exit 2), not a deep traceback, and so is
    a Ctrl-C outside the training loop (which checkpoints first: loop.STOP_SIGNALS)."""
    try:
        if under_torchrun() and os.environ.get("RANK", "0") != "0":
            fn()
        else:
            with stage_lock(stage_command()):
                fn()
    except DecoBenchError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C); every file written so far is complete (writes are atomic): run the "
              "same command again to continue", file=sys.stderr)
        sys.exit(130)


def under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or ("RANK" in os.environ and "WORLD_SIZE" in os.environ)


def relaunch_with_torchrun(params: Params, module: str, argv: list[str]) -> None:
    """Re-run this stage under torchrun when run.nproc * run.nnodes > 1 (single node, or one node of several:
    set DECO_RDZV_ENDPOINT=host:port and DECO_NODE_RANK on every node; README "Several GPUs and nodes")."""
    if params.run.nproc * params.run.nnodes == 1 or under_torchrun():
        return
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={params.run.nproc}",
           f"--nnodes={params.run.nnodes}"]
    if params.run.nnodes > 1:
        endpoint = os.environ.get("DECO_RDZV_ENDPOINT")
        if not endpoint:
            raise DecoBenchError("run.nnodes > 1 needs DECO_RDZV_ENDPOINT=host:port (the first node) on every node")
        cmd += ["--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}", f"--rdzv_id={params.run.profile}-{module}",
                f"--node_rank={os.environ.get('DECO_NODE_RANK', '0')}"]
    else:
        cmd += ["--standalone"]
    cmd += ["-m", module, *argv]
    os.execv(sys.executable, cmd)


def file_digest(path: str | Path) -> str:
    return sha256_file(path)[:16]


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0
