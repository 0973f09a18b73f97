"""Strict parameter loading: every bad parameter is reported by its dotted key, all at once, before any work.

Covers the issue "Reliability: runs that survive being killed, inputs that are checked", part 2 (parameters):
unknown keys, wrong types, out-of-range values and incompatible combinations; the committed profiles; and a
property test that feeds randomly broken parameter mappings to the loader.
"""

from __future__ import annotations

import copy
import math
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deco_bench import profiles
from deco_bench.tools import cli
from deco_bench.config import (AblationParams, BenchParams, BenchSize, ConfigError, ConvergenceParams, DataParams,
                               EvalParams, ModelEntry, Params, ReportParams, RunParams, SampleParams, SampleSetting,
                               SpectrumParams, TrainParams, load_params, parse_params)

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
DEFAULT: dict = yaml.safe_load((EXPERIMENTS / "default.yaml").read_text())


def broken(changes: dict[str, Any], base: dict | None = None) -> dict:
    """A copy of the default mapping with dotted keys set (value DELETE removes the key)."""
    raw = copy.deepcopy(DEFAULT if base is None else base)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        cur = raw
        for part in parents:
            cur = cur.setdefault(part, {})
        if value is DELETE:
            cur.pop(last, None)
        else:
            cur[last] = value
    return raw


DELETE = object()


def problems_of(raw: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_params(raw)
    return info.value.problems


# ---- the committed parameter files ----------------------------------------------------------------------------

def test_params_yaml_is_the_default_profile_and_valid():
    assert (ROOT / "params.yaml").read_text() == (EXPERIMENTS / "default.yaml").read_text()
    p = load_params(ROOT / "params.yaml")
    assert p.run.profile == "default"
    assert isinstance(p, Params) and set(p.models) >= {"deco", "baseline"}


@pytest.mark.parametrize("name", profiles.available(EXPERIMENTS))
def test_every_profile_resolves_and_validates(name):
    p = profiles.load_profile(name, EXPERIMENTS)
    assert p.run.profile == name
    # rendering what `deco-bench profile use NAME` would write gives back the same parameters
    rendered = yaml.safe_load(profiles.render(name, EXPERIMENTS))
    assert parse_params(rendered) == p


@pytest.mark.parametrize("name", ["imagenet256-xl", "imagenet512-xl", "ablation-l"])
def test_paper_profiles_equal_the_official_configs(name):
    assert profiles.check_official(name, EXPERIMENTS) == []


def test_check_official_reports_a_changed_value(tmp_path):
    # the dry run can fail: change one key the paper pins and it is listed with both values
    for f in EXPERIMENTS.glob("*.yaml"):
        (tmp_path / f.name).write_text(f.read_text())
    over = yaml.safe_load((tmp_path / "imagenet256-xl.yaml").read_text())
    over["train"]["lr"] = 3.0e-4
    (tmp_path / "imagenet256-xl.yaml").write_text(yaml.safe_dump(over))
    mismatches = profiles.check_official("imagenet256-xl", tmp_path)
    assert ("train.lr", 3.0e-4, 1.0e-4) in mismatches


# ---- every named bad parameter -> ConfigError naming the key --------------------------------------------------

BAD = [
    # (id, changes, key that must be named, words the message must contain)
    ("unknown-key", {"train.stepz": 10}, "train.stepz", "accepted keys"),
    ("unknown-section", {"trian": {"steps": 1}}, "trian", "accepted"),
    ("unknown-model-key", {"models.deco.prest": "deco-s"}, "models.deco.prest", "accepted keys"),
    ("missing-preset", {"models.deco.preset": DELETE}, "models.deco.preset", "missing"),
    ("no-models", {"models": {}}, "models", "non-empty"),
    ("models-not-mapping", {"models": ["deco"]}, "models", "non-empty"),
    ("section-not-mapping", {"train": [1, 2]}, "train", "mapping"),
    ("str-for-int", {"train.steps": "300"}, "train.steps", "expected int"),
    ("bool-for-int", {"train.steps": True}, "train.steps", "expected int"),
    ("float-for-int", {"data.resolution": 32.0}, "data.resolution", "expected int"),
    ("none-for-float", {"train.lr": None}, "train.lr", "expected float"),
    ("str-for-bool", {"train.lognorm_t": "yes"}, "train.lognorm_t", "expected bool"),
    ("int-for-str", {"data.imagenet_root": 5}, "data.imagenet_root", "expected str"),
    ("str-for-list", {"sample.guidance_interval": "0,1"}, "sample.guidance_interval", "expected list"),
    ("nan", {"train.lr": float("nan")}, "train.lr", "finite"),
    ("inf", {"sample.cfg_scale": float("inf")}, "sample.cfg_scale", "finite"),
    ("huge-int-for-float", {"train.lr": 10**400}, "train.lr", "finite"),
    ("lr-zero", {"train.lr": 0.0}, "train.lr", "> 0"),
    ("negative-steps", {"train.steps": -5}, "train.steps", ">= 1"),
    ("beta-above-1", {"train.beta1": 1.5}, "train.beta1", "<= 1"),
    ("quality-above-100", {"models.deco.freqfm_quality": 101}, "models.deco.freqfm_quality", "<= 100"),
    ("tiny-resolution", {"data.resolution": 4}, "data.resolution", ">= 8"),
    ("negative-seed", {"run.seed": -1}, "run.seed", ">= 0"),
    ("bad-choice", {"sample.sampler": "dpm"}, "sample.sampler", "'euler', 'heun'"),
    ("bad-device", {"run.device": "tpu"}, "run.device", "'auto', 'cpu', 'cuda'"),
    ("bad-on-bad-image", {"data.on_bad_image": "ignore"}, "data.on_bad_image", "'skip', 'fail'"),
    ("resolution-vs-patch", {"data.resolution": 30}, "data.resolution", "not divisible by the patch size 4"),
    ("batch-vs-nproc", {"run.nproc": 3}, "train.global_batch", "3 x 1"),
    ("batch-vs-nodes", {"run.nproc": 2, "run.nnodes": 3}, "train.global_batch", "6 x 1"),
    ("batch-vs-accum", {"train.grad_accum": 5}, "train.global_batch", "1 x 5"),
    ("gi-reversed", {"sample.guidance_interval": [0.8, 0.2]}, "sample.guidance_interval", "reversed"),
    ("gi-equal", {"sample.guidance_interval": [0.5, 0.5]}, "sample.guidance_interval", "lo < hi"),
    ("gi-below-0", {"sample.guidance_interval": [-0.1, 1.0]}, "sample.guidance_interval", "outside [0, 1]"),
    ("gi-above-1", {"sample.guidance_interval": [0.0, 1.5]}, "sample.guidance_interval", "outside [0, 1]"),
    ("gi-length", {"sample.guidance_interval": [0.5]}, "sample.guidance_interval", "[lo, hi]"),
    ("gi-not-numbers", {"sample.guidance_interval": ["a", 1]}, "sample.guidance_interval", "[lo, hi]"),
    ("gi-nan", {"sample.guidance_interval": [float("nan"), 1.0]}, "sample.guidance_interval", "lo < hi"),
    ("eval-unsorted", {"train.eval_ckpt_steps": [200, 100]}, "train.eval_ckpt_steps", "increasing"),
    ("eval-duplicate", {"train.eval_ckpt_steps": [100, 100]}, "train.eval_ckpt_steps", "increasing"),
    ("eval-beyond-steps", {"train.eval_ckpt_steps": [100, 400]}, "train.eval_ckpt_steps", "1..train.steps (300)"),
    ("eval-zero", {"train.eval_ckpt_steps": [0]}, "train.eval_ckpt_steps", "1..train.steps"),
    ("eval-float", {"train.eval_ckpt_steps": [1.5]}, "train.eval_ckpt_steps", "integers"),
    ("unknown-preset", {"models.deco.preset": "deco-xxl"}, "models.deco.preset", "deco-tiny"),
    ("unknown-arch-field", {"models.deco.arch": {"depht": 3}}, "models.deco.arch.depht", "depth"),
    ("arch-wrong-type", {"models.deco.arch": {"depth": "four"}}, "models.deco.arch.depth", "positive integer"),
    ("arch-zero-patch", {"models.deco.arch": {"patch_size": 0}}, "models.deco.arch.patch_size", "positive integer"),
    ("arch-heads", {"models.deco.arch": {"num_heads": 5}}, "models.deco.arch", "num_heads"),
    ("arch-decoder-patch", {"models.deco.arch": {"decoder_patch_size": 3}}, "models.deco.arch.decoder_patch_size",
     "must divide"),
    ("arch-fewer-classes", {"models.deco.arch": {"num_classes": 4}}, "models.deco", "data.num_classes is 8"),
    ("align-layer-deep", {"train.repa_align_layer": 5}, "train.repa_align_layer", "1..4"),
    ("seeds-removed", {"sample.seeds": [1, 2]}, "sample.seeds", "unknown key"),  # a parameter nothing read
    ("inception-no-weights", {"evaluate.feature_space": "inception"}, "evaluate.inception_weights", "weights"),
    ("dinov2-no-weights", {"train.repa_encoder": "dinov2-b14"}, "train.repa_encoder_weights", "weights"),
    ("embedded-too-many-classes", {"data.num_classes": 15}, "data.num_classes", "14"),
    ("extra-not-mapping", {"bench": 3}, "bench", "mapping"),
]


@pytest.mark.parametrize("changes,key,words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_parameter_is_named(changes, key, words):
    problems = problems_of(broken(changes))
    named = {k: m for k, m in problems}
    assert key in named, problems
    assert words in named[key], named[key]


def test_unknown_key_message_lists_the_accepted_keys():
    (key, msg), = problems_of(broken({"sample.num_image": 4}))
    assert key == "sample.num_image"
    assert all(f in msg for f in ("num_images", "batch_size", "guidance_interval", "shard_size"))


def test_repa_align_layer_is_free_without_repa():
    # the same deep align layer is fine when no variant uses REPA (the check can pass as well as fail)
    assert parse_params(broken({"train.repa_align_layer": 5, "train.repa_encoder": "none"})).train.repa_align_layer == 5


def test_data_classes_beyond_the_preset_are_allowed():
    # model_config() gives every variant data.num_classes classes, so the preset's own count does not limit it
    p = parse_params(broken({"data.num_classes": 12}))
    from deco_bench.config import model_config

    assert model_config(p, "deco").num_classes == 12


def test_several_problems_are_reported_together():
    raw = broken({"train.steps": "many", "data.resolution": 4, "sample.sampler": "dpm", "run.bogus": 1,
                  "models.baseline.preset": DELETE, "evaluate.bootstrap": -1})
    keys = [k for k, _ in problems_of(raw)]
    assert set(keys) == {"train.steps", "data.resolution", "sample.sampler", "run.bogus", "models.baseline.preset",
                         "evaluate.bootstrap"}


def test_several_incompatible_combinations_are_reported_together():
    raw = broken({"data.resolution": 30, "run.nproc": 3, "sample.guidance_interval": [0.9, 0.1],
                  "train.eval_ckpt_steps": [300, 100], "train.repa_align_layer": 6})
    keys = {k for k, _ in problems_of(raw)}
    assert keys == {"data.resolution", "train.global_batch", "sample.guidance_interval", "train.eval_ckpt_steps",
                    "train.repa_align_layer"}


def test_root_and_yaml_level_errors(tmp_path):
    assert problems_of(None)[0][0] == "<root>"
    assert problems_of([1, 2])[0][0] == "<root>"
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="parameter file not found") as info:
        load_params(missing)
    assert info.value.problems[0][0] == str(missing)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("train: {steps: [1, \n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad_yaml)
    bad_yaml.write_text("train:\n  steps: " + "9" * 5000 + "\n")  # beyond Python's int parsing limit
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad_yaml)


def test_non_string_yaml_keys_are_named_not_crashed(tmp_path):
    # YAML turns `1:`, `null:` and `true:` into non-string keys; mixed with string keys they must not break sorting
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(DEFAULT) + "1: x\nnull: y\n")
    with pytest.raises(ConfigError) as info:
        load_params(f)
    assert {"1", "None"} <= {k for k, _ in info.value.problems}
    raw = broken({})
    raw["train"][7] = 1
    raw["train"]["zz"] = 1
    keys = {k for k, _ in problems_of(raw)}
    assert {"train.7", "train.zz"} <= keys
    arch = broken({"models.deco.arch": {3: 1, "depth": 2, None: 0}})
    assert {"models.deco.arch.3", "models.deco.arch.None"} <= {k for k, _ in problems_of(arch)}


# ---- the command line: one clear message, exit code 2, no traceback ------------------------------------------

def test_cli_check_reports_every_problem(tmp_path, capsys):
    f = tmp_path / "broken.yaml"
    f.write_text(yaml.safe_dump(broken({"train.steps": 0, "sample.guidance_interval": [1.0, 0.0]})))
    assert cli.main(["check", "--params", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 2 invalid parameter(s):")
    assert "train.steps" in err and "sample.guidance_interval" in err
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(DEFAULT))
    assert cli.main(["check", "--params", str(good)]) == 0
    assert "valid" in capsys.readouterr().out


def test_cli_check_subprocess_exit_code_and_no_traceback(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text(yaml.safe_dump(broken({"data.resolution": 30, "models.deco.preset": "nope"})))
    r = subprocess.run([sys.executable, "-m", "deco_bench.tools.cli", "check", "--params", str(f)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    # deco's unknown preset, and the resolution against the patch size of the variant whose preset is known
    assert r.stderr.splitlines()[0] == "error: 2 invalid parameter(s):"
    assert "  - models.deco.preset: unknown preset 'nope'" in r.stderr
    assert r.stderr.count("  - data.resolution: 30 is not divisible") == 1


# ---- property test: randomly broken parameter files ------------------------------------------------------------

SECTION_CLASSES = {"run": RunParams, "data": DataParams, "train": TrainParams, "sample": SampleParams,
                   "evaluate": EvalParams, "spectrum": SpectrumParams, "ablation": AblationParams,
                   "convergence": ConvergenceParams, "report": ReportParams, "bench": BenchParams}


def _schema_key(key: str, model_names: set[str]) -> bool:
    import dataclasses

    from deco_bench.models import ModelConfig

    parts = key.split(".")
    if len(parts) == 1:
        return key in SECTION_CLASSES or key in ("models", "released")
    if parts[0] == "released":  # released.<row> or released.<row>.<field>
        from deco_bench.config import ReleasedRow
        return len(parts) == 2 or (len(parts) == 3 and parts[2] in {f.name for f in dataclasses.fields(ReleasedRow)})
    if parts[0] == "bench" and len(parts) == 3:  # bench.sizes[i].resolution, bench.sampling[i].name
        item = {"sizes": BenchSize, "sampling": SampleSetting}.get(parts[1].split("[")[0])
        return item is not None and parts[1].endswith("]") and parts[2] in {f.name for f in dataclasses.fields(item)}
    if parts[0] == "bench" and len(parts) == 2 and parts[1].split("[")[0] in ("sizes", "sampling"):
        return True
    if parts[0] == "report" and len(parts) == 3 and parts[1] == "tolerance":
        return True
    if parts[0] in SECTION_CLASSES:
        return len(parts) == 2 and parts[1] in {f.name for f in dataclasses.fields(SECTION_CLASSES[parts[0]])}
    if parts[0] == "models":
        for name in model_names:  # a model name may itself contain dots
            if key == f"models.{name}":
                return True
            rest = key[len(f"models.{name}."):] if key.startswith(f"models.{name}.") else None
            if rest is None:
                continue
            if rest in {f.name for f in dataclasses.fields(ModelEntry)}:
                return True
            if rest.startswith("arch.") and rest[5:] in {f.name for f in dataclasses.fields(ModelConfig)}:
                return True
    return False


def _raw_paths(obj: Any, prefix: str = "") -> set[str]:
    """Every dotted key present in a mapping (what a problem may name when the key is the offending one)."""
    out: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = f"{prefix}{k}"
            out.add(key)
            out |= _raw_paths(v, key + ".")
    elif isinstance(obj, list) and prefix:  # list items are named key[i] (bench.sizes[0].resolution)
        for i, v in enumerate(obj):
            key = f"{prefix[:-1]}[{i}]"
            out.add(key)
            out |= _raw_paths(v, key + ".")
    return out


def _mapping_paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Paths (tuples of keys) of every mapping or list inside `obj`, including the root."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)):
                out += _mapping_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            if isinstance(v, (dict, list)):
                out += _mapping_paths(v, prefix + (i,))
    return out


def _get(obj: Any, path: tuple) -> Any:
    for k in path:
        obj = obj[k]
    return obj


keys_st = st.one_of(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789.", min_size=1, max_size=12),
                    st.integers(-5, 5), st.none(), st.booleans())
scalars_st = st.one_of(
    st.none(), st.booleans(), st.text(max_size=10), st.integers(min_value=-10**6, max_value=-1),
    st.integers(), st.integers(min_value=10**300, max_value=10**400), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 0, 1, 0.5, -0.5, 1e-12, 3]),
    st.sampled_from(["deco-s", "deco-tiny", "baseline-xl", "euler", "heun", "embedded", "imagenet", "inception",
                     "dinov2-b14", "none", "fail", "skip", "bf16", "cuda", "cpu"]),
)
values_st = st.recursive(scalars_st, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(keys_st, inner, max_size=3)), max_leaves=6)


@st.composite
def breakage(draw, raw: dict) -> None:
    """Apply one random breakage to `raw` in place."""
    containers = _mapping_paths(raw)
    path = draw(st.sampled_from(containers))
    target = _get(raw, path)
    kind = draw(st.sampled_from(["delete", "add", "replace", "replace", "replace", "swap_gi", "shuffle_list"]))
    if kind == "swap_gi":
        gi = raw.get("sample", {}).get("guidance_interval") if isinstance(raw.get("sample"), dict) else None
        if isinstance(gi, list):
            gi.reverse()
        return
    if kind == "add":
        if isinstance(target, dict):
            target[draw(keys_st)] = draw(values_st)
        else:
            target.append(draw(values_st))
        return
    if not target:
        return
    index = draw(st.sampled_from(list(target.keys()) if isinstance(target, dict) else list(range(len(target)))))
    if kind == "delete":
        del target[index]
    elif kind == "shuffle_list":
        if isinstance(target[index], list):
            target[index] = list(draw(st.permutations(target[index])))
    else:
        target[index] = draw(values_st)


@st.composite
def broken_params(draw) -> dict:
    raw = copy.deepcopy(DEFAULT)
    # exercise the model sections too, with a model whose name is not a plain identifier
    if draw(st.booleans()):
        raw["models"]["deco.v2"] = {"preset": "deco-s", "arch": {"decoder_depth": 1}}
    for _ in range(draw(st.integers(1, 3))):
        draw(breakage(raw))
    return raw


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=broken_params())
def test_randomly_broken_parameters_are_rejected_by_key(raw):
    try:
        result = parse_params(raw)
    except ConfigError as e:
        assert e.problems, "a ConfigError must list at least one problem"
        models = raw.get("models")
        names = {str(n) for n in models} if isinstance(models, dict) else set()
        present = _raw_paths(raw)
        for key, msg in e.problems:
            assert isinstance(key, str) and isinstance(msg, str) and msg, (key, msg)
            assert _schema_key(key, names) or key in present, f"problem names no known key: {key!r}: {msg}"
            # every problem is in the message: one line for a single problem, one line each for several
            assert f"  - {key}: {msg}" in str(e) or str(e) == f"invalid parameter {key}: {msg}"
        return
    except Exception:
        pytest.fail("parse_params crashed instead of raising ConfigError:\n" + traceback.format_exc())
    # the breakage happened to be valid: the result is a complete, typed Params
    assert isinstance(result, Params)
    assert result.train.lr > 0 and math.isfinite(result.train.lr)
    assert result.data.resolution % 1 == 0 and all(isinstance(m, ModelEntry) for m in result.models.values())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(raw=broken_params(), edits=st.lists(st.tuples(st.floats(0, 1), st.sampled_from(
    ["", ":", " ", "\n", "-", "[", "{", "!!binary", "2024-01-01", "? ", "&a", "*a", "~", "\t", "'", "1e999"])),
    min_size=0, max_size=3))
def test_randomly_damaged_parameter_files_give_config_errors(tmp_path_factory, raw, edits):
    """The same through the file: damaged YAML text is a ConfigError naming the file or a key, never a crash."""
    text = yaml.safe_dump(raw, sort_keys=False)
    for where, insert in edits:  # splice text in at random places, replacing one character
        i = int(where * len(text))
        text = text[:i] + insert + text[i + 1:]
    f = tmp_path_factory.mktemp("damaged") / "params.yaml"
    f.write_text(text)
    try:
        load_params(f)
    except ConfigError as e:
        assert e.problems and all(isinstance(k, str) and k and m for k, m in e.problems)
    except Exception:
        pytest.fail(f"load_params crashed on:\n{text}\n" + traceback.format_exc())


# ---- duplicate keys ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, key, lines", [
    ("train:\n  steps: 300\n  steps: 400\n", "steps", (2, 3)),
    ("models:\n  deco: {preset: deco-s}\n  deco: {preset: deco-s}\n", "deco", (2, 3)),
    ("run: {seed: 0, seed: 1}\n", "seed", (1, 1)),
    ("train: {}\ntrain: {}\n", "train", (1, 2)),
])
def test_a_duplicate_key_is_refused_with_both_line_numbers(tmp_path, text, key, lines):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_params(path)
    ((where, msg),) = err.value.problems
    assert where == str(path) and msg == f"key {key!r} appears twice: line {lines[0]} and line {lines[1]}"


def test_a_duplicate_key_in_a_profile_is_refused(tmp_path):
    (tmp_path / "default.yaml").write_text((EXPERIMENTS / "default.yaml").read_text())
    (tmp_path / "twice.yaml").write_text("train:\n  steps: 10\n  steps: 20\n")
    with pytest.raises(ConfigError, match=r"twice\.yaml.*'steps' appears twice: line 2 and line 3"):
        profiles.resolve("twice", tmp_path)


@settings(max_examples=60, deadline=None)
@given(key=st.sampled_from(["steps", "lr", "seed", "deco", "0", "a b", "é"]), depth=st.integers(0, 2))
def test_random_duplicate_keys_give_a_config_error_never_a_traceback(tmp_path_factory, key, depth):
    path = tmp_path_factory.mktemp("dup") / "params.yaml"
    indent = "  " * depth
    head = "".join("  " * i + f"s{i}:\n" for i in range(depth))
    path.write_text(head + f"{indent}{key!r}: 1\n{indent}{key!r}: 2\n")
    with pytest.raises(ConfigError, match="appears twice"):
        load_params(path)
