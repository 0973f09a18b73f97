"""Training checkpoints: atomic, self-describing, rotated, loadable without executing code.

A checkpoint holds everything a resumed run needs to continue exactly where an uninterrupted run would be: model,
EMA, REPA projector, optimiser state, the step, and the resolved parameters and model config (checked on resume).
Randomness needs no saved state: every step re-seeds from (seed, step) (see `loop.step_generator`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from deco_bench.io import CorruptFileError, atomic_torch_save, safe_torch_load

CKPT_PATTERN = re.compile(r"^step_(\d{8})\.pt$")
FORMAT = "deco-bench-train-v1"


def ckpt_name(step: int) -> str:
    return f"step_{step:08d}.pt"


def list_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CKPT_PATTERN.match(p.name))]
    return sorted(found)


def save_checkpoint(folder: str | Path, step: int, state: dict[str, Any], keep_last: int) -> Path:
    """Write step_<step>.pt atomically, then delete all but the newest `keep_last` checkpoints."""
    path = Path(folder) / ckpt_name(step)
    atomic_torch_save({"format": FORMAT, "step": step, **state}, path)
    for _, old in list_checkpoints(folder)[:-keep_last]:
        old.unlink(missing_ok=True)
    # A run killed while writing leaves its temporary file (as large as a checkpoint); only this process writes
    # checkpoints here, so any other one is such a leftover.
    for stale in Path(folder).glob(".step_*.pt.*.tmp"):
        stale.unlink(missing_ok=True)
    return path


def is_tensor_map(obj: Any) -> bool:
    """A state dict: a non-empty mapping of names to tensors."""
    return (isinstance(obj, dict) and bool(obj)
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def _is_step(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint, every part a resume uses checked for its type before anything reads it."""
    state = safe_torch_load(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CorruptFileError(f"{path}: not a deco-bench training checkpoint (format {FORMAT!r} expected)")
    opt = state.get("optimizer")
    problems = [name for name, ok in (
        ("step", _is_step(state.get("step"))), ("module", is_tensor_map(state.get("module"))),
        ("ema", is_tensor_map(state.get("ema"))), ("meta", isinstance(state.get("meta"), dict)),
        ("optimizer", isinstance(opt, dict) and isinstance(opt.get("state"), dict)
         and isinstance(opt.get("param_groups"), list))) if not ok]
    if problems:
        raise CorruptFileError(f"{path}: a damaged deco-bench training checkpoint (bad or missing "
                               f"{', '.join(problems)}); delete it to resume from the one before")
    return state


def load_ema_weights(path: str | Path, what: str) -> dict[str, Any]:
    """An EMA weights file (final.pt or eval_ckpts/step_*.pt): a mapping whose 'ema' is a state dict."""
    state = safe_torch_load(path)
    check_ema_state(state, path, what)
    return state


def check_ema_state(state: Any, path: str | Path, what: str = "EMA weights") -> None:
    if not isinstance(state, dict) or not is_tensor_map(state.get("ema")):
        raise CorruptFileError(f"{path}: {what} needs a deco-bench EMA weights file (final.pt or "
                               f"eval_ckpts/step_*.pt: a mapping whose 'ema' holds the weights), not "
                               f"{type(state).__name__}")
    meta = state.get("meta", {})
    if not isinstance(meta, dict) or not isinstance(meta.get("model_config", {}), dict):
        raise CorruptFileError(f"{path}: {what}: its 'meta' (model_config) is damaged")


def latest_checkpoint(folder: str | Path) -> dict[str, Any] | None:
    """The newest readable checkpoint in `folder`, or None. Unreadable newer ones are reported, not used silently."""
    ckpts = list_checkpoints(folder)
    if not ckpts:
        return None
    return load_checkpoint(ckpts[-1][1])
