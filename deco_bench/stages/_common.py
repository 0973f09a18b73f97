"""What every stage shares: argument parsing, strict parameter loading, threads, progress bars, clear errors, the
stage lock and GPU groups (DECO_BENCH_GPU_GROUPS: one group of GPUs per concurrently running stage, docs/queue.md)."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
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
    claim_gpus(params)  # before anything asks CUDA about its devices: CUDA reads CUDA_VISIBLE_DEVICES once
    check_device(params)
    if params.run.threads > 0:
        torch.set_num_threads(params.run.threads)
    return params


def check_device(params: Params) -> None:
    """What this machine can honour, checked when a stage starts (the parameters may come from another machine)."""
    if params.run.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError([("run.device", "'cuda' is asked for but no CUDA device is visible on this machine; set "
                                          "run.device to auto or cpu, or run on a machine with a GPU")])


GPU_GROUPS_ENV = "DECO_BENCH_GPU_GROUPS"  # "0,1;2,3;4,5;6,7": the GPU groups concurrent stage processes share out
GPU_LOCK_DIR_ENV = "DECO_BENCH_GPU_LOCK_DIR"  # an absolute folder for the per-device locks (default below)
GPU_GROUP_ENV = "DECO_BENCH_GPU_GROUP"  # set by the process holding a group: its children (torchrun ranks) inherit it
_DEVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9:_.-]*")  # an index (3), a GPU or MIG UUID (GPU-8c1f..., MIG-...)


class GpuGroupError(DecoBenchError):
    """DECO_BENCH_GPU_GROUPS or DECO_BENCH_GPU_LOCK_DIR is malformed, or does not fit the parameters."""


class GpuGroupBusyError(DecoBenchError):
    """Every GPU group stayed held by other processes for longer than the caller was willing to wait."""


def parse_gpu_groups(spec: str) -> list[tuple[str, ...]]:
    """'0,1;2,3' -> [('0', '1'), ('2', '3')]: groups separated by ';', the devices of a group by ','.

    Each device is what CUDA_VISIBLE_DEVICES accepts (an index or a GPU/MIG UUID), and no device may be in two
    groups (two processes would then share it). Anything else is a GpuGroupError naming the first problem.
    """
    hint = f"expected e.g. {GPU_GROUPS_ENV}='0,1;2,3' (groups separated by ';', the devices of a group by ',')"
    if not spec.strip():
        raise GpuGroupError(f"{GPU_GROUPS_ENV} is set but empty; {hint}, or unset it")
    groups: list[tuple[str, ...]] = []
    owner: dict[str, int] = {}
    for i, part in enumerate(spec.split(";"), start=1):
        devices = tuple(d.strip() for d in part.split(","))
        bad = [d for d in devices if not _DEVICE.fullmatch(d)]
        if bad:
            raise GpuGroupError(f"{GPU_GROUPS_ENV}={spec!r}: group {i} ({part.strip()!r}) has "
                                f"{'an empty device' if bad[0] == '' else f'a bad device {bad[0]!r}'}; {hint}")
        for d in devices:
            if d in owner:
                raise GpuGroupError(f"{GPU_GROUPS_ENV}={spec!r}: device {d} is in group {owner[d]} and group {i}; "
                                    f"a device may be in one group only")
            owner[d] = i
        groups.append(devices)
    return groups


def gpu_lock_dir() -> Path:
    """Where the per-device locks live: DECO_BENCH_GPU_LOCK_DIR, else <tmp>/deco-bench-gpus-<uid>. It must be
    absolute and the same for every worker: queued experiments run in temporary copies of the repository."""
    value = os.environ.get(GPU_LOCK_DIR_ENV)
    if value is None:
        return Path(tempfile.gettempdir()) / f"deco-bench-gpus-{os.getuid()}"
    if not os.path.isabs(value):
        raise GpuGroupError(f"{GPU_LOCK_DIR_ENV}={value!r} is not an absolute path: every worker (each in its own "
                            f"temporary copy of the repository) must find the same locks")
    return Path(value)


@dataclass
class GpuClaim:
    """A GPU group held by this process: one flock per device, released when the files close (at exit at the
    latest, however the process ends)."""

    index: int  # 1-based position of the group in the spec
    devices: tuple[str, ...]
    files: list = field(default_factory=list)

    def release(self) -> None:
        for f in self.files:
            with contextlib.suppress(OSError):
                f.truncate(0)
            f.close()
        self.files = []


def _device_lock(lock_dir: Path, device: str) -> Path:
    return lock_dir / f"gpu-{device}.lock"


def _try_group(lock_dir: Path, devices: tuple[str, ...]) -> list | None:
    """Lock every device of the group, or none of them."""
    held = []
    for d in devices:
        f = open(_device_lock(lock_dir, d), "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            for h in held:
                h.close()
            return None
        held.append(f)
    return held


def _device_holder(lock_dir: Path, device: str) -> str | None:
    """Who holds a device's lock (its first line), or None when it is free."""
    with open(_device_lock(lock_dir, device), "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            return (f.read().strip().splitlines() or ["a process that has not written its name yet"])[0]
        fcntl.flock(f, fcntl.LOCK_UN)
        return None


def claim_gpu_group(groups: list[tuple[str, ...]], lock_dir: Path, *, timeout: float | None = None,
                    poll: float = 2.0, say: Callable[[str], None] | None = None, what: str = "") -> GpuClaim:
    """Hold the first group whose devices are all free (an exclusive flock per device under `lock_dir`).

    When every group is held, say so once (naming the holders) and wait, checking every `poll` seconds, for up to
    `timeout` seconds (None: as long as it takes), then raise GpuGroupBusyError.
    """
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    lock_dir.mkdir(parents=True, exist_ok=True)
    start, told = time.monotonic(), False
    while True:
        for index, devices in enumerate(groups, start=1):
            held = _try_group(lock_dir, devices)
            if held is not None:
                for f in held:
                    with contextlib.suppress(OSError):  # the record is for messages only: the flock is what counts
                        f.seek(0)
                        f.truncate()
                        f.write(f"PID {os.getpid()}, GPU group {','.join(devices)}, since "
                                f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {what or stage_command()}\n")
                        f.flush()
                if told:
                    say(f"GPU group {','.join(devices)} is free now: starting")
                return GpuClaim(index, devices, held)
        waited = time.monotonic() - start
        if timeout is not None and waited >= timeout:
            raise GpuGroupBusyError(f"no GPU group of {len(groups)} came free in {timeout:g} s "
                                    f"({_describe_groups(groups, lock_dir)})")
        if not told:
            say(f"waiting for a GPU group: all {len(groups)} of {GPU_GROUPS_ENV} are in use "
                f"({_describe_groups(groups, lock_dir)}); this stage starts when one is released")
            told = True
        time.sleep(poll if timeout is None else max(0.0, min(poll, timeout - waited)))


def _describe_groups(groups: list[tuple[str, ...]], lock_dir: Path) -> str:
    holders = []
    for devices in groups:
        held = {h for d in devices if (h := _device_holder(lock_dir, d)) is not None}
        holders.append(f"{','.join(devices)}: " + ("; ".join(sorted(held)) if held else "free"))
    return " | ".join(holders)


_GPU_CLAIM: GpuClaim | None = None


def claim_gpus(params: Params) -> GpuClaim | None:
    """One GPU group per concurrently running stage (queued experiments: docs/queue.md).

    With DECO_BENCH_GPU_GROUPS set (and run.device not cpu), take the first free group, make it this process's
    CUDA_VISIBLE_DEVICES and hold it until the process exits. Called before CUDA is asked anything, and before
    the torchrun relaunch: the lock files stay open across exec (torchrun holds them) and the ranks inherit
    CUDA_VISIBLE_DEVICES and DECO_BENCH_GPU_GROUP, which tells them (and any other child) not to claim again.
    """
    global _GPU_CLAIM
    spec = os.environ.get(GPU_GROUPS_ENV)
    if spec is None or params.run.device == "cpu" or _GPU_CLAIM is not None or under_torchrun() \
            or os.environ.get(GPU_GROUP_ENV):
        return _GPU_CLAIM
    groups = parse_gpu_groups(spec)
    small = [g for g in groups if len(g) < params.run.nproc]
    if small:
        raise GpuGroupError(f"run.nproc is {params.run.nproc} (processes per node, one GPU each) but "
                            f"{GPU_GROUPS_ENV}={spec!r} has a group of {len(small[0])} device(s) "
                            f"({','.join(small[0])}): give every group at least {params.run.nproc} devices")
    if torch.cuda.is_initialized():
        raise GpuGroupError("CUDA was initialised before the GPU group was claimed, so CUDA_VISIBLE_DEVICES "
                            "cannot take effect in this process")
    claim = claim_gpu_group(groups, gpu_lock_dir())
    for f in claim.files:  # a torchrun relaunch execs this process: it keeps holding the group
        os.set_inheritable(f.fileno(), True)
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(claim.devices)
    os.environ[GPU_GROUP_ENV] = ",".join(claim.devices)
    print(f"GPU group {claim.index} of {len(groups)} ({GPU_GROUPS_ENV}): CUDA_VISIBLE_DEVICES="
          f"{os.environ['CUDA_VISIBLE_DEVICES']}", file=sys.stderr, flush=True)
    _GPU_CLAIM = claim
    return claim


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
