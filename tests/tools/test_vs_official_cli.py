"""tools.vs_official's command line: the official checkout from --official or env DECO_OFFICIAL, said in one line
when missing, and a pair the machine cannot hold refused before anything is built."""

from __future__ import annotations

import pytest

from deco_bench.bench import memory_need
from deco_bench.tools import vs_official as vs

NONE = ("no official DeCo checkout: pass --official PATH or set DECO_OFFICIAL=PATH "
        "(a clone of github.com/Zehong-Ma/DeCo)")


@pytest.fixture
def checkout(tmp_path):
    """A folder that passes for a checkout (the marker file only: importing from it would fail)."""
    (tmp_path / vs.OFFICIAL_MARKER).parent.mkdir(parents=True)
    (tmp_path / vs.OFFICIAL_MARKER).write_text("")
    return tmp_path


def test_the_checkout_comes_from_the_flag_or_the_variable(monkeypatch, checkout, tmp_path):
    monkeypatch.delenv("DECO_OFFICIAL", raising=False)
    assert vs.find_official() == (None, NONE)
    assert vs.find_official(flag=None)[1] == ("no official DeCo checkout: set DECO_OFFICIAL=PATH (a clone of "
                                              "github.com/Zehong-Ma/DeCo)")
    assert vs.find_official(str(checkout)) == (checkout, "")
    monkeypatch.setenv("DECO_OFFICIAL", str(checkout))
    assert vs.find_official() == (checkout, "") and vs.official_repo() == checkout
    monkeypatch.setenv("DECO_OFFICIAL", str(tmp_path / "src"))
    assert vs.find_official() == (None, f"DECO_OFFICIAL={tmp_path / 'src'} is not a DeCo checkout (no "
                                        f"src/models/transformer/dit_c2i_DeCo.py in it)")


def test_without_a_checkout_the_tool_says_so_in_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("DECO_OFFICIAL", raising=False)
    assert vs.main(["--out", str(tmp_path / "v.json")]) == 2
    assert capsys.readouterr().err == f"vs_official: error: {NONE}\n"


def test_a_pair_the_machine_cannot_hold_is_refused_before_it_is_built(monkeypatch, capsys, checkout, tmp_path):
    monkeypatch.setattr(memory_need, "available_bytes", lambda device: (1e6, "test limit"))
    out = tmp_path / "v.json"
    assert vs.main(["--official", str(checkout), "--device", "cpu", "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("vs_official: refusing to start: the ") and " pair at batch 8, 32 px needs about " in line
    assert "(weights, gradients and optimiser of 2 models " in line
    assert line.endswith("but this machine has 0.0 GB available (test limit); use --size s, or a GPU with more memory")
    assert not out.exists()
