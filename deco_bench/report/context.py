"""The report's context: every stage's JSON output -> one dict the templates render. Never recomputes a metric.

    report.inputs.load_inputs(root)   I/O: reads the standard paths of docs/outputs.md (absent or unreadable files
                                      recorded) for exactly the models of params `models:`
    build_context(inputs, ...)        pure: inputs -> {section: {...}}; each section is either present with its data
                                      or {"ran": False, "message": "The X stage did not run (no <path>)."}; raises
                                      report.steps.TrainStepMismatchError when an output of a model's weights claims
                                      another training step than params train.steps (the report states N from them)

The sections, in report.sections (one module each): overview (the first screen: what was run, the headline DeCo vs
baseline result), models (the models table, training steps, chart colours),
paper_tables (Tables 2 and 1 with verdicts), pairs (our DeCo vs each other model), ablation, convergence,
spectrum, bench (efficiency), samples, provenance. Numbers and metric names are shown by report.fmt.

Honesty rules (the issue's): an embedded-scale number never goes in a paper-number column, and embedded metrics
carry their own names ("FD (embedded feature net)", never "FID"). At embedded scale the Table 2 / Table 1 rows
say "not comparable: embedded scale" and our DeCo-vs-baseline result sits in its own section; at paper scale a
paper row is compared with ours only when our run used that row's configuration (model size, resolution, epochs,
NFE, sampler), within the stated tolerance.
"""

from __future__ import annotations

from typing import Callable

from deco_bench import paper
from deco_bench.report.inputs import PATHS
from deco_bench.report.sections.ablation import _ranking_text, ablation_section
from deco_bench.report.sections.bench import bench_section
from deco_bench.report.sections.convergence import convergence_section
from deco_bench.report.sections.models import chart_colors, model_rows, train_steps
from deco_bench.report.sections.overview import first_screen_grids, headline, run_overview
from deco_bench.report.sections.pairs import pair_comparisons
from deco_bench.report.sections.paper_tables import DEFAULT_TOLERANCE, paper_tables
from deco_bench.report.sections.provenance import provenance_section
from deco_bench.report.sections.samples import samples_section
from deco_bench.report.sections.spectrum import spectrum_section

__all__ = ["build_context", "_ranking_text"]  # _ranking_text: imported from here by tests/studies/test_ablation.py


# The sections built from one stage's files, and the files they read: a file of an unexpected shape that gets past
# report.inputs' checks makes its section a named problem in the page (and an entry under "errors"), never a crash.
SECTION_FILES = {"pairs": ("evaluate", "evaluation/<model>.json"), "headline": ("evaluate", "evaluation/<model>.json"),
                 "overview": ("train", "metrics/train/<model>.json / bench/results.json"),
                 "ablation": ("ablation", PATHS["ablation"]),
                 "convergence": ("convergence", f"{PATHS['curves']} / {PATHS['speedup']}"),
                 "spectrum": ("spectrum", PATHS["spectrum"]),
                 "bench": ("bench", f"{PATHS['bench']} / {PATHS['bench_recordings']}/*.json"),
                 "samples": ("sample", "previews/<model>.npz / data/info.json / metrics/evalnet/real.json")}
SHAPE_ERRORS = (TypeError, AttributeError, KeyError, ValueError, IndexError, ZeroDivisionError, OverflowError)


def _section(name: str, errors: list, build: Callable[[], dict]) -> dict:
    try:
        return build()
    except SHAPE_ERRORS as e:
        stage, files = SECTION_FILES[name]
        what = f"{type(e).__name__}: {' '.join(str(e).split())[:160]}"
        errors.append({"path": files, "message": f"has an unexpected shape ({what}); the {name} section is left out"})
        empty = {"tables": [], "recordings": []} if name == "bench" else {}  # what its template reads regardless
        return {"ran": False, "message": f"The {stage} output {files} is in an unexpected shape ({what}); its "
                                         f"section is left out.", **empty}


def build_context(inputs: dict, *, tolerance: dict | None = None, generated_at: str = "") -> dict:
    """The whole report as data. Pure: same inputs, same context."""
    params = inputs.get("params") or {}
    tol = {**DEFAULT_TOLERANCE, **(tolerance or {})}
    run = params.get("run") or {}
    steps = train_steps(inputs, params)
    models = model_rows(inputs, params, steps)
    colors = chart_colors(inputs, params)
    scale = run.get("scale") or next((m["scale"] for m in models if m["scale"]), "embedded")
    errors = [{"path": k, "message": v} for k, v in sorted((inputs.get("errors") or {}).items())]
    samples = _section("samples", errors, lambda: samples_section(inputs.get("grids") or {}, models,
                                                                  inputs.get("data_info"), inputs.get("real"),
                                                                  inputs.get("models"), inputs.get("real_grid")))
    if samples.get("ran"):
        samples["first"], samples["more"] = first_screen_grids(samples["grids"], params)
    return {
        "title": f"deco-bench report — profile {run.get('profile', 'unknown')}, {scale} scale",
        "generated_at": generated_at, "scale": scale, "profile": run.get("profile", "unknown"),
        "paper_protocol": paper.PROTOCOL, "models": models,
        "errors": errors,
        "overview": _section("overview", errors, lambda: {"ran": True, **run_overview(inputs, params, models, steps)}),
        "headline": _section("headline", errors, lambda: headline(inputs, params, models)),
        "paper_tables": paper_tables(inputs, params, models, scale, tol, steps),
        "pairs": _section("pairs", errors, lambda: pair_comparisons(inputs, models)),
        "ablation": _section("ablation", errors,
                             lambda: ablation_section(inputs.get("ablation"), list(inputs.get("models") or {}))),
        "convergence": _section("convergence", errors, lambda: convergence_section(
            inputs.get("curves"), inputs.get("speedup"), colors, params.get("convergence") or {})),
        "spectrum": _section("spectrum", errors, lambda: spectrum_section(inputs.get("spectrum"), colors)),
        "bench": _section("bench", errors, lambda: bench_section(inputs.get("bench"),
                                                                 inputs.get("bench_recordings") or [], colors)),
        "samples": samples,
        "provenance": provenance_section(inputs.get("provenance") or {}, params),
    }
