"""What a run's checkpoints belong to, and how a run folder is brought to exactly `train.steps`.

A training run is named by its *trajectory fingerprint*: every parameter that changes which weights step k holds
(the model, the loss recipe, the data, the optimiser, the seed), the sha256 of every file named by a parameter
that feeds the weights (`models.<m>.init_from`, `train.repa_encoder_weights`), and the source of the code that
defines the trajectory (`TRAJECTORY_CODE`). Parameters that only say how long to train or how often to write
(`NON_TRAJECTORY_KEYS`) and cosmetic ones (`COSMETIC_ENTRY_KEYS`, e.g. the report label) are not in it, so
changing them resumes instead of starting over.

Because step k's weights depend only on the fingerprint and k (never on `train.steps`), a folder can be moved in
both directions: forward by resuming, backward by dropping every checkpoint past `train.steps` and resuming from
the newest one at or before it. Either way the result equals an uninterrupted run of exactly `train.steps`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from deco_bench import config as cfgmod
from deco_bench.io import CorruptFileError, DecoBenchError, MissingFileError, sha256_cached
from deco_bench.training import checkpoint as ckpt

LOG_NAME = "train_log.jsonl"

# train.* keys that say how long to train and how often to write: changing them resumes.
NON_TRAJECTORY_KEYS = ("steps", "eval_ckpt_steps", "ckpt_every", "keep_last", "log_every", "compile",
                       "activation_checkpointing", "num_workers")
# models.<m>.* keys that only name or group the variant in the report: changing them never retrains.
COSMETIC_ENTRY_KEYS = ("label",)
# The code whose behaviour decides the weights at step k (paths relative to the deco_bench package). An edit to
# any of these files starts training over: resuming old checkpoints would report weights the code never made.
TRAJECTORY_CODE = ("models", "diffusion", "training", "data", "spectral", "stages/train.py")


class StepMismatchError(DecoBenchError):
    """A weights file holds another training step than the one its consumer was asked for."""


def code_digest(paths: tuple[str, ...] = TRAJECTORY_CODE, root: Path | None = None) -> str:
    """sha256 over the relative names and contents of the Python files under `paths` of the package at `root`."""
    root = Path(root) if root is not None else Path(__file__).resolve().parent.parent
    files: list[Path] = []
    for rel in paths:
        target = root / rel
        files.extend([target] if target.is_file() else sorted(target.rglob("*.py")))
    h = hashlib.sha256()
    for f in sorted(set(files)):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def named_file_digest(path: str, what: str) -> str | None:
    """The sha256 of a file named by a parameter (None when the parameter is empty); a missing file is an error."""
    if not path:
        return None
    if not Path(path).is_file():
        raise MissingFileError(f"{path}: file not found ({what})")
    return sha256_cached(path)


def trajectory_meta(p: cfgmod.Params, name: str, model_cfg: Any) -> dict:
    """The identity stored in every checkpoint of run `name`: fingerprint, model config and name."""
    train = {k: v for k, v in cfgmod.to_dict(p.train).items() if k not in NON_TRAJECTORY_KEYS}
    entry = {k: v for k, v in cfgmod.to_dict(p.model(name)).items() if k not in COSMETIC_ENTRY_KEYS}
    files = {"init_from": named_file_digest(p.model(name).init_from, f"models.{name}.init_from"),
             "repa_encoder_weights": named_file_digest(p.train.repa_encoder_weights, "train.repa_encoder_weights")}
    trajectory = {"model": cfgmod.to_dict(model_cfg), "entry": entry, "train": train, "data": cfgmod.to_dict(p.data),
                  "seed": p.run.seed, "files": files, "code": code_digest()}  # not the process count: see loop.py
    digest = hashlib.sha256(json.dumps(trajectory, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"fingerprint": digest, "model_config": cfgmod.to_dict(model_cfg), "model_name": name}


def reconcile(run_dir: Path, meta: dict, steps: int, eval_steps: list[int]) -> str:
    """Prepare run_dir so that resuming from its newest checkpoint ends at exactly `steps`; returns a log note.

    - checkpoints of another fingerprint (parameters, named files or code changed): everything is removed;
    - resume points past `steps` (train.steps was lowered): removed, with evaluation checkpoints past `steps`;
      the run resumes from the newest point at or before `steps` (zero steps to train when one is at `steps`);
    - a newly scheduled evaluation step below the newest resume point: rewind to a point at or before it.
    Every step re-run this way reproduces the removed one exactly (the trajectory depends on the fingerprint only).
    """
    ckpt_dir, eval_dir = run_dir / "ckpt", run_dir / "eval_ckpts"
    found = ckpt.list_checkpoints(ckpt_dir)
    if not found:
        shutil.rmtree(eval_dir, ignore_errors=True)
        return "starting from scratch"
    try:
        latest = ckpt.load_checkpoint(found[-1][1])
    except DecoBenchError as e:  # an unreadable newest checkpoint: drop it, fall back to the previous one
        found[-1][1].unlink()
        return f"dropped unreadable checkpoint {found[-1][1].name} ({e}); " + reconcile(run_dir, meta, steps, eval_steps)
    if latest.get("meta", {}).get("fingerprint") != meta["fingerprint"]:
        for sub in ("ckpt", "eval_ckpts"):
            shutil.rmtree(run_dir / sub, ignore_errors=True)
        (run_dir / LOG_NAME).unlink(missing_ok=True)
        return ("parameters changed (or a file they name, or the training code) since the last checkpoint: "
                "starting over")
    notes = []
    if found[-1][0] > steps:
        for s, f in found:
            if s > steps:
                f.unlink()
        for s, f in ckpt.list_checkpoints(eval_dir):
            if s > steps:
                f.unlink()
        newest = found[-1][0]
        found = [(s, f) for s, f in found if s <= steps]
        start = found[-1][0] if found else 0
        notes.append(f"train.steps {steps} is below the newest checkpoint (step {newest}): rewound to step {start}")
        if not found:
            return notes[0] + ", retraining from scratch (the same trajectory)"
    # A newly scheduled evaluation checkpoint earlier than the newest resume point: rewind to a resume point at or
    # before it (the trajectory is deterministic, so re-running those steps reproduces them exactly).
    have = {s for s, _ in ckpt.list_checkpoints(eval_dir)}
    missing = [s for s in eval_steps if s not in have and s <= found[-1][0]]
    if missing:
        for s, f in found:
            if s > missing[0]:
                f.unlink()
        notes.append(f"rewinding to produce evaluation checkpoint(s) {missing}")
    else:
        notes.append(f"resuming from step {found[-1][0]}")
    return "; ".join(notes)


def check_weights_step(state: dict, path: Path, expected_step: int | None, expected_name: str | None = None) -> None:
    """Refuse an EMA weights file whose recorded step (or run name) is not the one its consumer claims."""
    step = state.get("step")
    if not isinstance(step, int) or isinstance(step, bool):
        raise CorruptFileError(f"{path}: records no training step (written by an older deco-bench?); re-run the "
                               f"train stage")
    if expected_step is not None and step != expected_step:
        raise StepMismatchError(f"{path}: holds the weights of step {step}, but step {expected_step} is expected "
                                f"(train.steps or the file name); re-run the train stage")
    name = state.get("meta", {}).get("model_name")
    if expected_name is not None and name is not None and name != expected_name:
        raise StepMismatchError(f"{path}: holds weights of model {name!r}, not {expected_name!r}")
