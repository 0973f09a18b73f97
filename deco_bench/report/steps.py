"""Which training step every weights-derived output came from, checked against params `train.steps`.

Each output made from a model's weights records the step of those weights (docs/outputs.md):

    evaluation/<m>.json      "train_step"   (evaluate stage)
    previews/<m>.json        "train_step"   (sample stage)
    metrics/train/<m>.json   "steps"        (train stage)
    ablation/tables.json     protocol.train_steps (ablation stage, the step of the metrics it ranked)

`check_steps` stops with one line naming every file whose step is not params `train.steps` (or that records none:
it predates the check), so the report never states "N training steps" over outputs of another N.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from deco_bench.io import DecoBenchError


class TrainStepMismatchError(DecoBenchError):
    """A weights-derived output claims another training step than params.yaml train.steps (or records none)."""


@dataclass(frozen=True)
class StepSource:
    path: str   # as shown to the user, e.g. "evaluation/deco.json"
    field: str  # dotted key holding the step, e.g. "train_step" or "protocol.train_steps"
    stage: str  # the DVC stage that writes it, e.g. "evaluate@deco"


def model_sources(model: str) -> dict[str, StepSource]:
    """The per-model outputs that carry a step, keyed as load_inputs keys them (report.inputs)."""
    return {"metrics": StepSource(f"evaluation/{model}.json", "train_step", f"evaluate@{model}"),
            "sample_info": StepSource(f"previews/{model}.json", "train_step", f"sample@{model}"),
            "train_summary": StepSource(f"metrics/train/{model}.json", "steps", f"train@{model}")}


def _get(doc: Any, dotted: str) -> tuple[bool, Any]:
    for part in dotted.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return False, None
        doc = doc[part]
    return True, doc


def _is_step(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_steps(claims: Iterable[tuple[StepSource, Any]], want: int | None) -> dict[str, int]:
    """{path: step} for every (source, parsed JSON) in `claims` (a None document, an absent file, is skipped).

    Raises TrainStepMismatchError, one line naming each file, when a file records no step, or a step other than
    `want` (params train.steps); with `want` None, when the files disagree among themselves.
    """
    problems, found = [], {}
    for src, doc in claims:
        if doc is None:
            continue
        present, v = _get(doc, src.field)
        if not present:
            problems.append(f"{src.path} records no training step (no '{src.field}'): it predates the training-step "
                            f"check; re-run `dvc repro {src.stage}`")
        elif not _is_step(v) or (want is not None and v != want):
            against = f"params.yaml train.steps is {want}" if want is not None else "no train.steps in params.yaml"
            problems.append(f"{src.path} claims training step {v!r}, but {against}; re-run `dvc repro {src.stage}`")
        else:
            found[src.path] = v
    if want is None and len(set(found.values())) > 1:
        problems.append("the outputs claim different training steps: "
                        + ", ".join(f"{p} {v}" for p, v in found.items()))
    if problems:
        raise TrainStepMismatchError("; ".join(problems))
    return found


__all__ = ["TrainStepMismatchError", "StepSource", "model_sources", "check_steps"]
