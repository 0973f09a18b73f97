"""Inputs that can hurt, refused by `deco-bench check` before any stage writes anything: each with its exact one-line
error, and the folder unchanged (hashed before and after). The property tests feed random model names and random
duplicate keys: every one is accepted and safe, or refused with a named error, never a traceback."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deco_bench.config import MODEL_KEY
from deco_bench.tools import cli

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = yaml.safe_load((ROOT / "experiments" / "default.yaml").read_text())
RULE = ("so it must match [a-z0-9][a-z0-9_-]{0,63} (lower-case letters, digits, '_' and '-', at most 64 "
        "characters)")


def tree_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and ".deco_bench" not in p.parts:  # a stage's lock file (empty once it exits) is expected
            h.update(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def check(folder: Path, raw: dict | str, capsys) -> tuple[int, list[str]]:
    """`deco-bench check` on a params file holding `raw`; (exit status, stderr lines); the folder must not change."""
    path = folder / "params.yaml"
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    before = tree_hash(folder)
    rc = cli.main(["check", "--params", str(path)])
    assert tree_hash(folder) == before, "check changed the folder"
    assert not (folder / "runs").exists() and not (folder / "metrics").exists()
    return rc, capsys.readouterr().err.strip().splitlines()


def with_model(name) -> dict:
    raw = copy.deepcopy(DEFAULT)
    raw["models"][name] = {"preset": "deco-s", "label": "x"}
    return raw


@pytest.mark.parametrize("name", ["a/b", "..", "../x", "/abs/path", "$HOME", "`id`", "a b", "déco", "", "Deco",
                                  "x" * 65, "-lead"])
def test_a_model_name_that_is_not_a_plain_name_is_refused(tmp_path, capsys, name):
    rc, err = check(tmp_path, with_model(name), capsys)
    assert rc == 2
    assert err == [f"error: invalid parameter models.{name}: invalid model name {name!r}: a name becomes a folder "
                   f"and a stage name, {RULE}"]


@pytest.mark.parametrize("changes, line", [
    ({"sample": {"shard_size": 512}}, "sample.shard_size: 512 is larger than sample.num_images (256)"),
    ({"sample": {"num_images": 4, "shard_size": 4}},
     "sample.num_images: 4 images cannot hold one of each of the 8 classes (data.num_classes)"),
    ({"data": {"resolution": 36}},
     "data.resolution: 36 is not a multiple of 8 (the 8x8 block DCT of FreqFM and of the spectrum study)"),
    ({"spectrum": {"cut": 64}}, "spectrum.cut: got 64; must be <= 63 and >= 1"),
    ({"convergence": {"baseline": "nope"}}, "convergence.baseline: 'nope' is not a model; defined: baseline, deco"),
    ({"ablation": {"metric": "fidd"}}, "ablation.metric: got 'fidd'; accepted values: 'auto', 'fd_embed', "
                                       "'kid_embed', 'is_embed', 'fid', 'sfid', 'kid', 'is'"),
    ({"report": {"per_class": 0}}, "report.per_class: got 0; must be >= 1"),
    ({"bench": {"repeats": 0}}, "bench.repeats: got 0; must be >= 1"),
])
def test_a_late_failing_value_is_refused_by_check(tmp_path, capsys, changes, line):
    raw = copy.deepcopy(DEFAULT)
    for section, values in changes.items():
        raw[section].update(values)
    rc, err = check(tmp_path, raw, capsys)
    assert rc == 2 and err == [f"error: invalid parameter {line}"]


def test_a_duplicate_key_is_refused_by_check_with_both_lines(tmp_path, capsys):
    text = (ROOT / "experiments" / "default.yaml").read_text().replace("  steps: 300\n", "  steps: 300\n  steps: 400\n")
    rc, err = check(tmp_path, text, capsys)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln == "  steps: 400")
    assert rc == 2 and err == [f"error: invalid parameter {tmp_path / 'params.yaml'}: key 'steps' appears twice: "
                               f"line {line - 1} and line {line}"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.one_of(st.text(max_size=70), st.from_regex(r"[a-z0-9][a-z0-9_/.$` -]{0,10}", fullmatch=True),
                      st.sampled_from(["../../etc", "/tmp/x", "a/../b", "ok_name", "ok-name-2"])))
def test_random_model_names_are_accepted_and_safe_or_refused_by_name(tmp_path_factory, capsys, name):
    folder = tmp_path_factory.mktemp("names")
    rc, err = check(folder, with_model(name), capsys)
    (name,) = set(yaml.safe_load((folder / "params.yaml").read_text())["models"]) - set(DEFAULT["models"]) or {name}
    if rc == 0:  # accepted: a plain name, which cannot leave runs/ or metrics/
        assert MODEL_KEY.fullmatch(name) and "/" not in name and ".." not in name
    else:
        shown = name if name.isprintable() else repr(name)
        assert rc == 2 and len(err) == 1 and "Traceback" not in "\n".join(err)
        assert err[0].startswith(f"error: invalid parameter models.{shown}: invalid model name")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(section=st.sampled_from(["run", "data", "train", "sample", "evaluate", "models", "bench", "report"]),
       where=st.integers(0, 5))
def test_random_duplicate_keys_are_refused_by_check(tmp_path_factory, capsys, section, where):
    lines = (ROOT / "experiments" / "default.yaml").read_text().splitlines()
    start = lines.index(f"{section}:")
    body = [i for i in range(start + 1, len(lines)) if lines[i].startswith("  ") and not lines[i].startswith("   ")
            and not lines[i].strip().startswith("#")]
    i = body[where % len(body)]
    lines.insert(i + 1, lines[i])  # the same key again, right below
    rc, err = check(tmp_path_factory.mktemp("dup"), "\n".join(lines) + "\n", capsys)
    assert rc == 2 and len(err) == 1 and f"appears twice: line {i + 1} and line {i + 2}" in err[0]


def test_every_stage_refuses_a_path_like_model_name_before_writing(tmp_path):
    """The same rule in a stage (it loads params.yaml the same way), before it creates any folder."""
    import os
    import subprocess
    import sys

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_model("a/b"), sort_keys=False))
    before = tree_hash(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for stage, args in (("train", ["--model", "deco"]), ("inputs", [])):
        r = subprocess.run([sys.executable, "-m", f"deco_bench.stages.{stage}", *args], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and r.stderr.strip().splitlines() == [
            f"error: invalid parameter models.a/b: invalid model name 'a/b': a name becomes a folder and a stage "
            f"name, {RULE}"], r.stderr
    assert tree_hash(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".deco_bench", "params.yaml"]  # only the (empty) lock
