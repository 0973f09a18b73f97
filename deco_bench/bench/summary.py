"""The bench stage's DVC metrics: a few headline numbers of bench/results.json, flat and numbers only.

bench/results.json holds every timing, memory, FLOP and telemetry figure with its spread and the reasons for what
was not measured; `dvc exp show` needs a handful of columns. From the first case (the first of `bench.sizes` in
the first `bench.compile` mode), for each measured model <m> and each ratio <m>/<ref> of that case:

    <m>_train_images_per_s                     training-step throughput (median)
    <m>_sample_images_per_s                    sampling throughput (median) of the first `bench.sampling` setting
                                               at the case's largest sampling batch
    <m>_train_peak_bytes                       CUDA peak allocated memory of the training step (CUDA only)
    <m>_over_<ref>_train_images_per_s, ..._sample_images_per_s, ..._train_peak_bytes   the same, as ratios

A figure that was not measured on this machine (CUDA memory on a CPU run) is left out, never null.
"""

from __future__ import annotations

from typing import Any

FIGURES = ("train_images_per_s", "sample_images_per_s", "train_peak_bytes")


def _get(doc: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def figure_paths(case: dict) -> dict[str, str]:
    """Each figure's dotted path inside a model's entry of `case` (and inside its ratios)."""
    paths = {"train_images_per_s": "train.images_per_s.median",
             "train_peak_bytes": "train.memory.cuda_peak_allocated_bytes"}
    for entry in (case.get("models") or {}).values():  # the first model that sampled (one that failed did not)
        sample = entry.get("sample") or {}
        if sample:
            setting = next(iter(sample))
            batches = sorted(sample[setting], key=lambda b: int(str(b).rsplit("_", 1)[-1]))
            if batches:
                paths["sample_images_per_s"] = f"sample.{setting}.{batches[-1]}.images_per_s.median"
            break
    return paths


def summarise(result: dict) -> dict[str, float]:
    """bench/summary.json from a bench result (schema deco-bench/bench-results/1): see the module docstring."""
    cases = result.get("cases") or {}
    if not cases:
        return {}
    case = next(iter(cases.values()))
    paths = figure_paths(case)
    out: dict[str, float] = {}
    for m, entry in (case.get("models") or {}).items():
        for name in FIGURES:
            v = _number(_get(entry, paths[name])) if name in paths else None
            if v is not None:
                out[f"{m}_{name}"] = v
    for pair, ratios in (case.get("ratios") or {}).items():
        m, _, ref = pair.partition("/")
        for name in FIGURES:
            v = _number((ratios or {}).get(paths[name])) if name in paths else None
            if v is not None:
                out[f"{m}_over_{ref}_{name}"] = v
    return out


__all__ = ["FIGURES", "figure_paths", "summarise"]
