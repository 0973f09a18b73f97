"""What every stage shares: argument parsing, strict parameter loading, threads, progress bars, clear errors."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from deco_bench.config import Params, load_params, to_dict
from deco_bench.io import DecoBenchError, atomic_write_json, sha256_file


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="parameter file (default: params.yaml)")
    return p


def setup(params_path: str) -> Params:
    params = load_params(params_path)
    if params.run.threads > 0:
        torch.set_num_threads(params.run.threads)
    return params


def write_resolved(path: str | Path, params: Params, **extra: Any) -> None:
    """Every stage writes the parameters it ran with next to its outputs."""
    atomic_write_json(path, {"params": to_dict(params), **extra})


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def progress_bar(total: int, desc: str, unit: str = "it", initial: int = 0, disable: bool = False):
    return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=disable, dynamic_ncols=True,
                file=sys.stderr, mininterval=1.0)


def main_wrapper(fn: Callable[[], None]) -> None:
    """Run a stage; a DecoBenchError is printed as one clear message (exit 2), not a deep traceback."""
    try:
        fn()
    except DecoBenchError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


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
