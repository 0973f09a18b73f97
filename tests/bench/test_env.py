"""The environment fingerprint's git revision: from git, or named by DECO_BENCH_GIT_REVISION (copies whose .git is
missing or stale, as on a GPU machine that received a copy of the working tree)."""

from __future__ import annotations

import subprocess

from deco_bench.bench import env as envmod


def test_revision_of_this_checkout_is_head(monkeypatch):
    monkeypatch.delenv(envmod.REVISION_ENV, raising=False)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    got = envmod.git_revision()
    if head:
        assert got["git_revision"] == head and got["git_reason"] is None


def test_copy_without_git_takes_the_named_revision(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.delenv(envmod.REVISION_ENV, raising=False)
    assert envmod.git_revision()["git_revision"] is None
    monkeypatch.setenv(envmod.REVISION_ENV, "0123abc")
    got = envmod.git_revision()
    assert got["git_revision"] == "0123abc" and envmod.REVISION_ENV in got["git_reason"]
    assert got["git_dirty"] is None and got["git_head_reported"] is None


def test_named_revision_wins_over_a_stale_head(monkeypatch):
    monkeypatch.setenv(envmod.REVISION_ENV, "0123abc")
    got = envmod.git_revision()
    assert got["git_revision"] == "0123abc"
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert got["git_head_reported"] == (head or None)
