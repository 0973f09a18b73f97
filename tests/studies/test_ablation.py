"""The ablation matrix (paper Tables 1 and 4) and its report tables: exact expansion, validity, axis assignment,
best marks and ranking disagreement flags on hand-made metrics."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from deco_bench import paper
from deco_bench.studies.ablation import NOT_RUN, TABLE4_AXES, assign_roles, build_tables, expand_ablation_grid
from deco_bench.config import ConfigError, parse_params
from deco_bench.profiles import resolve

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"

# The issue's list: Table 4 axes and Table 1 rows.
ISSUE_AXES = {"decoder_hidden": {16, 32, 64}, "decoder_depth": {1, 3, 6}, "decoder_patch_size": {1, 4, 16},
              "interaction": {"adaln", "add"}, "freqfm_weight": {0.0, 0.5, 1.0, 2.0}, "freqfm_quality": {50, 85, 100}}
ISSUE_TABLE1 = {"baseline", "deco_no_repa", "deco_no_freqfm", "deco", "pixnerd", "jit"}


def _raw(profile: str, models: dict) -> dict:
    raw = copy.deepcopy(resolve(profile, EXPERIMENTS))
    raw["models"] = copy.deepcopy(models)
    return raw


def test_full_grid_is_exactly_the_ablation_l_profile():
    grid = expand_ablation_grid("deco-l")
    profile_models = yaml.safe_load((EXPERIMENTS / "ablation-l.yaml").read_text())["models"]
    assert list(grid) == list(profile_models)
    ours, theirs = parse_params(_raw("ablation-l", grid)), parse_params(_raw("ablation-l", profile_models))
    for name in grid:
        assert ours.models[name] == theirs.models[name], name


def test_grid_covers_exactly_the_issue_list_once_each():
    grid = expand_ablation_grid("deco-l")
    assert len(grid) == 17  # 6 Table 1 rows + 2+2+2+1+2+2 non-default Table 4 settings
    roles, unassigned = assign_roles(parse_params(_raw("ablation-l", grid)))
    assert unassigned == {}
    places: dict[str, set] = {}
    for name, where in roles.items():
        for table, setting in where:
            places.setdefault(table, set()).add(setting)
    assert places.pop("table1") == ISSUE_TABLE1
    assert places == ISSUE_AXES
    # (a), (b) vary DeCo w/o FreqFM (their default row is 34.12 in the paper); the others vary full DeCo
    assert grid["decoder_hidden_16"]["freqfm_weight"] == 0.0 and "freqfm_weight" not in grid["interaction_add"]


@pytest.mark.parametrize("profile", ["default", "ablation-l"])
def test_every_variant_is_a_valid_parameter_set(profile):
    grid = expand_ablation_grid("deco-l")
    roles = {k: grid[k] for k in ("deco", "baseline", "pixnerd", "jit")}  # those convergence and bench name
    for name, entry in grid.items():
        p = parse_params(_raw(profile, {**roles, name: entry}))
        assert p.models[name].label == entry["label"]


def test_patch_size_variants_keep_the_decoder_parameter_count():
    from deco_bench.config import model_config
    from deco_bench.models import decoder_parameters

    p = parse_params(_raw("ablation-l", expand_ablation_grid("deco-l")))
    reference = decoder_parameters(model_config(p, "deco"))
    for name in ("decoder_patch_size_4", "decoder_patch_size_16"):
        assert abs(decoder_parameters(model_config(p, name)) / reference - 1) < 0.01  # Table 4(c)
    unmatched = expand_ablation_grid("deco-l", match_decoder_params=False)["decoder_patch_size_16"]
    assert unmatched["arch"] == {"decoder_patch_size": 16}


def test_other_network_rows_follow_the_size_of_deco():
    # Table 1's PixNerd and JiT+REPA rows use the network of DeCo's size; PixNerd has no XL preset (no config).
    assert {k: v["preset"] for k, v in expand_ablation_grid("deco-s", axes={}).items()} == {
        "deco": "deco-s", "baseline": "baseline-s", "deco_no_freqfm": "deco-s", "deco_no_repa": "deco-s",
        "pixnerd": "pixnerd-s", "jit": "baseline-s"}
    grid = expand_ablation_grid("deco-xl", axes={})
    assert "pixnerd" not in grid and grid["jit"] == {"preset": "baseline-xl", "label": "JiT+REPA", "freqfm_weight": 0.0,
                                                      "arch": {"prediction": "x"}}


def test_small_preset_grid_and_invalid_settings():
    grid = expand_ablation_grid("deco-s", axes={"decoder_patch_size": (1, 2, 4), "freqfm_weight": (0.0, 1.0)},
                                include_table1=False)
    assert set(grid) == {"deco", "deco_no_freqfm", "decoder_patch_size_2", "decoder_patch_size_4"}
    parse_params(_raw("default", {**grid, "baseline": {"preset": "baseline-s", "label": "Baseline"}}))
    with pytest.raises(ValueError, match="decoder_patch_size=16"):
        expand_ablation_grid("deco-s")  # the DiT patch of deco-s is 4
    with pytest.raises(ValueError, match="unknown ablation axes"):
        expand_ablation_grid("deco-l", axes={"width": (1,)})
    with pytest.raises(ValueError):
        expand_ablation_grid("baseline-l")


# ----------------------------------------------------------------------------------------------- tables

def _metrics(value: float, ci: float = 0.5, space: str = "inception") -> dict:
    key = "fid" if space == "inception" else "fd_embed"
    return {"metrics": {key: value, "is": 40.0}, "ci": {key: [value - ci, value + ci]}, "num_images": 50000,
            "feature_space": space}


def _axis(tables: dict, name: str) -> dict:
    return next(a for a in tables["table4"] if a["axis"] == name)


def test_tables_mark_best_and_flag_a_ranking_that_disagrees():
    grid = expand_ablation_grid("deco-l")
    p = parse_params(_raw("ablation-l", grid))
    metrics = {name: _metrics(30.0) for name in grid}
    # paper (a): 32 (34.12) < 64 (35.88) < 16 (37.63); ours: 32 < 16 < 64 -> one discordant pair (16, 64)
    metrics["deco_no_freqfm"] = _metrics(10.0)
    metrics["decoder_hidden_16"] = _metrics(11.0, ci=2.0)
    metrics["decoder_hidden_64"] = _metrics(12.0, ci=2.0)
    tables = build_tables(metrics, p)
    assert tables["metric"] == "fid" and tables["protocol"]["comparable_values"] is True
    hidden = _axis(tables, "decoder_hidden")
    rows = {r["setting"]: r for r in hidden["rows"]}
    assert [r["setting"] for r in hidden["rows"]] == [16, 32, 64]
    assert rows[32]["model"] == "deco_no_freqfm" and rows[32]["best_ours"] and rows[32]["best_paper"]
    assert not rows[16]["best_ours"] and rows[16]["paper"]["fid"] == 37.63 and rows[16]["ours"]["ci"] == [9.0, 13.0]
    ranking = hidden["ranking"]
    assert ranking["disagrees_with_paper"] is True and ranking["best_agrees"] is True
    assert ranking["kendall_tau"] == pytest.approx(1 / 3)
    assert [d["settings"] for d in ranking["discordant"]] == [[16, 64]]
    assert ranking["discordant"][0]["ci_overlap"] is True
    # weight 0 is DeCo w/o FreqFM with the paper's Table 1 number beside it
    weight = {r["setting"]: r for r in _axis(tables, "freqfm_weight")["rows"]}
    assert weight[0.0]["model"] == "deco_no_freqfm" and weight[0.0]["paper"]["fid"] == 34.12
    assert weight[1.0]["model"] == "deco" and weight[1.0]["default_ours"] and weight[1.0]["default_paper"]
    t1 = {r["setting"]: r for r in tables["table1"]["rows"]}
    assert t1["deco_no_repa"]["paper"]["fid"] == 67.55 and t1["deco_no_repa"]["model"] == "deco_no_repa"
    assert all(a["status"] == "run" for a in tables["table4"]) and tables["unassigned"] == {}


def test_tables_agree_when_our_order_is_the_papers():
    grid = expand_ablation_grid("deco-l", axes={"freqfm_quality": (50, 85, 100)})
    p = parse_params(_raw("ablation-l", grid))
    fid = {"deco": 31.35, "freqfm_quality_50": 31.54, "freqfm_quality_100": 33.84}
    tables = build_tables({n: _metrics(fid.get(n, 50.0)) for n in grid}, p)
    quality = _axis(tables, "freqfm_quality")["ranking"]
    assert quality["kendall_tau"] == 1.0 and quality["disagrees_with_paper"] is False and quality["discordant"] == []
    assert _axis(tables, "interaction")["status"] == NOT_RUN


def test_embedded_ablation_profile_tables_list_unrun_axes_and_use_the_embedded_metric():
    raw = resolve("embedded-ablation", EXPERIMENTS)
    p = parse_params(raw)
    metrics = {n: _metrics(v, space="embed") for n, v in (("deco", 5.0), ("baseline", 9.0), ("deco_no_freqfm", 6.0))}
    metrics = {n: metrics[n] for n in p.models}
    tables = build_tables(metrics, p)
    assert tables["metric"] == "fd_embed" and tables["scale"] == "embedded"
    assert tables["protocol"]["comparable_values"] is False
    status = {a["axis"]: a["status"] for a in tables["table4"]}
    assert status == {"decoder_hidden": NOT_RUN, "decoder_depth": NOT_RUN, "decoder_patch_size": NOT_RUN,
                      "interaction": NOT_RUN, "freqfm_weight": "run", "freqfm_quality": NOT_RUN}
    weight = _axis(tables, "freqfm_weight")
    assert weight["ranking"]["compared"] == [0.0, 1.0] and weight["ranking"]["disagrees_with_paper"] is False
    # deco-s has a 2-block decoder: our default depth is 2, a setting the paper does not have
    depth = {r["setting"]: r for r in _axis(tables, "decoder_depth")["rows"]}
    assert depth[2]["model"] == "deco_no_freqfm" and depth[2]["paper"] is None and depth[3]["ours"] is None
    t1 = tables["table1"]
    assert t1["ranking"]["compared"] == ["baseline", "deco_no_freqfm", "deco"]
    assert t1["ranking"]["kendall_tau"] == 1.0  # 5 < 6 < 9 as 31.35 < 34.12 < 61.10


def test_unassignable_variant_is_reported_not_placed():
    grid = expand_ablation_grid("deco-l", axes={}, include_table1=True)
    grid["odd"] = {"preset": "deco-l", "label": "odd", "freqfm_quality": 50,
                   "repa_weight": 0.0}
    p = parse_params(_raw("ablation-l", grid))
    tables = build_tables({n: _metrics(30.0) for n in grid}, p)
    assert "odd" in tables["unassigned"] and "freqfm_quality" in tables["unassigned"]["odd"]
    assert all(r["model"] != "odd" for a in tables["table4"] for r in a["rows"])


def test_stage_section_validation_names_the_key():
    raw = resolve("default", EXPERIMENTS)
    for section, bad in (("ablation", {"metric": "fidd"}), ("spectrum", {"num_images": 0, "colour": 1})):
        with pytest.raises(ConfigError) as err:
            parse_params({**raw, section: {**raw[section], **bad}})
        keys = {k for k, _ in err.value.problems}
        assert keys == ({"ablation.metric"} if section == "ablation" else {"spectrum.num_images", "spectrum.colour"})
    assert parse_params({**raw, "spectrum": {**raw["spectrum"], "num_images": 8}}).spectrum.num_images == 8
    assert paper.TABLE4["decoder_hidden"]["default"] == 32  # the table layout reads these defaults
    assert set(TABLE4_AXES) == set(paper.TABLE4)


def test_ablation_stage_reads_every_models_evaluation(tmp_path):
    import json

    from deco_bench.io import MissingFileError
    from deco_bench.stages.ablation import run

    raw = resolve("embedded-ablation", EXPERIMENTS)  # the default and DeCo w/o FreqFM
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "evaluation").mkdir()
    step = {"train_step": raw["train"]["steps"]}  # the evaluate stage records the step of the weights
    for name, value in (("deco", 5.0), ("baseline", 9.0)):
        (tmp_path / "evaluation" / f"{name}.json").write_text(json.dumps({**_metrics(value, space="embed"), **step}))
    with pytest.raises(MissingFileError, match="deco_no_freqfm"):
        run(str(tmp_path / "params.yaml"), tmp_path / "evaluation", tmp_path / "out")
    (tmp_path / "evaluation" / "deco_no_freqfm.json").write_text(json.dumps({**_metrics(4.0, space="embed"), **step}))
    run(str(tmp_path / "params.yaml"), tmp_path / "evaluation", tmp_path / "out")
    tables = json.loads((tmp_path / "out" / "tables.json").read_text())
    weight = next(a for a in tables["table4"] if a["axis"] == "freqfm_weight")
    assert weight["ranking"]["disagrees_with_paper"] is True  # ours: w=0 (4.0) beats w=1 (5.0); the paper's not
    assert weight["ranking"]["discordant"][0]["settings"] == [0.0, 1.0]


# ------------------------------------------------------------------------------- ranking and its significance

def _replicated(value: float, sd: float, seed: int, n: int = 50) -> dict:
    """An evaluation/<m>.json with bootstrap replicates of spread `sd` around `value` (fid), as the evaluate stage."""
    import numpy as np

    from deco_bench.metrics.bootstrap import percentile_interval

    reps = list(value + np.random.default_rng(seed).normal(0.0, sd, n))
    return {"metrics": {"fid": value, "is": 40.0}, "ci": {"fid": list(percentile_interval(reps))},
            "bootstrap": {"fid": reps}, "num_images": 50000, "feature_space": "inception"}


def _quality_tables(fid: dict[str, float], sd: float) -> tuple[dict, dict]:
    grid = expand_ablation_grid("deco-l", axes={"freqfm_quality": (50, 85, 100)})
    p = parse_params(_raw("ablation-l", grid))
    metrics = {n: _replicated(fid.get(n, 50.0), sd, seed=k) for k, n in enumerate(grid)}
    return build_tables(metrics, p), metrics


def test_agreement_inside_the_intervals_is_not_resolved():
    from deco_bench.report.context import _ranking_text

    # our order is the paper's (τ = +1), but every difference lies inside its bootstrap interval
    tables, _ = _quality_tables({"deco": 31.35, "freqfm_quality_50": 31.54, "freqfm_quality_100": 33.84}, sd=5.0)
    rk = _axis(tables, "freqfm_quality")["ranking"]
    assert rk["kendall_tau"] == 1.0 and rk["best_agrees"] is True
    assert rk["significance"] == {"level": 0.95, "pairs": 3, "significant": 0, "not_significant": 3, "unknown": 0,
                                  "significant_same_order": 0, "significant_opposite_order": 0,
                                  "kendall_tau_significant": None, "resolved": False}
    assert rk["best_significant"] is False
    text = _ranking_text(rk)
    assert text == ("Ranking not resolved by this run: none of the 3 pairs of settings differs beyond its 95% "
                    "bootstrap interval, so the order of our point values (Kendall τ +1.00 against the paper's) is no "
                    "evidence of agreement or disagreement.")
    assert "agrees" not in text


def test_significant_pairs_are_counted_with_the_interval_of_metrics_compare():
    from deco_bench.metrics.api import compare
    from deco_bench.report.context import _ranking_text

    tables, metrics = _quality_tables({"deco": 31.35, "freqfm_quality_50": 31.54, "freqfm_quality_100": 33.84},
                                      sd=0.01)
    rk = _axis(tables, "freqfm_quality")["ranking"]
    assert rk["significance"]["significant"] == 3 and rk["significance"]["significant_same_order"] == 3
    assert rk["significance"]["kendall_tau_significant"] == 1.0 and rk["best_significant"] is True
    first = rk["pairs"][0]
    assert first["settings"] == [50, 85] and first["order"] == "same" and first["method"] == "bootstrap-difference"
    want = compare(metrics["freqfm_quality_50"], metrics["deco"])["fid"]
    assert first["interval"] == want["interval"] and first["difference"] == pytest.approx(31.35 - 31.54)
    assert _ranking_text(rk) == (
        "3 of 3 pairs of settings differ beyond their 95% bootstrap interval: 3 ordered as in the paper, 0 ordered "
        "differently (Kendall τ over those pairs +1.00; over all point values +1.00); best setting agrees "
        "(significantly better than every other setting).")


def test_a_significant_reversal_is_named():
    from deco_bench.report.context import _ranking_text

    # ours: q100 (30.0) best, significantly; the paper's q100 (33.84) is its worst
    tables, _ = _quality_tables({"deco": 31.35, "freqfm_quality_50": 31.54, "freqfm_quality_100": 30.0}, sd=0.01)
    rk = _axis(tables, "freqfm_quality")["ranking"]
    assert [d["settings"] for d in rk["discordant"]] == [[50, 100], [85, 100]]
    assert all(d["significant"] for d in rk["discordant"]) and rk["disagrees_significantly"] is True
    assert rk["best_agrees"] is False and rk["best_vs_paper_best_significant"] is True
    assert _ranking_text(rk) == (
        "3 of 3 pairs of settings differ beyond their 95% bootstrap interval: 1 ordered as in the paper, 2 ordered "
        "differently (Kendall τ over those pairs -0.33; over all point values -0.33); ordered differently: 50 vs 100 "
        "(significant); 85 vs 100 (significant); best setting differs (significantly better than the paper's best "
        "setting).")


def test_without_replicates_or_intervals_significance_is_stated_as_such():
    from deco_bench.report.context import _ranking_text

    grid = expand_ablation_grid("deco-l", axes={"freqfm_quality": (50, 85, 100)})
    p = parse_params(_raw("ablation-l", grid))
    fid = {"deco": 31.35, "freqfm_quality_50": 31.54, "freqfm_quality_100": 33.84}
    # intervals only: compare's conservative ci-overlap test (q100's interval is clear of the others')
    rk = _axis(build_tables({n: _metrics(fid.get(n, 50.0), ci=0.5) for n in grid}, p), "freqfm_quality")["ranking"]
    assert {q["method"] for q in rk["pairs"]} == {"ci-overlap"}
    assert [q["significant"] for q in rk["pairs"]] == [False, True, True]
    # no intervals at all: unknown, never agreement
    bare = {n: {"metrics": {"fid": fid.get(n, 50.0)}, "feature_space": "inception"} for n in grid}
    rk = _axis(build_tables(bare, p), "freqfm_quality")["ranking"]
    assert rk["significance"]["unknown"] == 3 and rk["significance"]["resolved"] is False
    assert _ranking_text(rk).startswith("Ranking not resolved by this run: our values carry no intervals")


def test_ablation_stage_ignores_stray_files_and_checks_the_step(tmp_path):
    import json

    from deco_bench.report.steps import TrainStepMismatchError
    from deco_bench.stages.ablation import run

    raw = resolve("embedded-ablation", EXPERIMENTS)  # the default and DeCo w/o FreqFM
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "evaluation").mkdir()
    for name, value in (("deco", 5.0), ("baseline", 9.0), ("deco_no_freqfm", 4.0)):
        (tmp_path / "evaluation" / f"{name}.json").write_text(
            json.dumps({**_metrics(value, space="embed"), "train_step": 300}))
    (tmp_path / "evaluation" / "removed_model.json").write_text("{not even json")  # a removed model's leftover
    run(str(tmp_path / "params.yaml"), tmp_path / "evaluation", tmp_path / "out")
    tables = json.loads((tmp_path / "out" / "tables.json").read_text())
    assert tables["protocol"]["train_steps"] == 300 and "after 300 training steps" in tables["protocol"]["ours"]
    (tmp_path / "evaluation" / "baseline.json").write_text(json.dumps({**_metrics(9.0, space="embed"), "train_step": 200}))
    with pytest.raises(TrainStepMismatchError) as err:
        run(str(tmp_path / "params.yaml"), tmp_path / "evaluation", tmp_path / "out")
    assert str(err.value) == (f"{tmp_path / 'evaluation' / 'baseline.json'} claims training step 200, but params.yaml "
                              f"train.steps is 300; re-run `dvc repro evaluate@baseline`")
