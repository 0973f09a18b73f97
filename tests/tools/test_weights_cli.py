"""`deco-bench weights list|verify`: every file a profile needs, where it goes and whether it is there and right."""

import shutil
from pathlib import Path

from deco_bench.tools.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_weights_list_and_verify_for_the_released_profile(tmp_path, monkeypatch, capsys):
    shutil.copytree(REPO / "experiments", tmp_path / "experiments")
    monkeypatch.chdir(tmp_path)
    assert main(["weights", "list", "--profile", "released-256"]) == 1
    out = capsys.readouterr().out
    assert "released.e800-250.checkpoint: weights/imagenet256_epoch800.ckpt [MISSING]" in out
    assert "https://huggingface.co/zehongma/DeCo (file imagenet256_epoch800.ckpt)" in out
    assert "published sha256 6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2" in out
    assert "6 file(s) missing or wrong" in out
    weights = tmp_path / "weights"
    weights.mkdir()
    for name in ("imagenet256_epoch320.ckpt", "imagenet256_epoch600.ckpt", "imagenet256_epoch800.ckpt",
                 "VIRTUAL_imagenet256_labeled.npz"):
        (weights / name).write_bytes(name.encode())
    (weights / "weights-inception-2015-12-05-6726825d.pth").write_bytes(b"not the inception weights")
    assert main(["weights", "verify", "--profile", "released-256"]) == 1
    out = capsys.readouterr().out
    import hashlib
    digest = hashlib.sha256(b"imagenet256_epoch320.ckpt").hexdigest()
    assert f"weights/imagenet256_epoch320.ckpt [present, sha256 {digest} (none published: recorded)]" in out
    assert "evaluate.inception_weights: weights/weights-inception-2015-12-05-6726825d.pth [PROBLEM:" in out
    assert "expected 6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2" in out
    assert "1 file(s) missing or wrong" in out
    assert main(["weights", "list", "--profile", "default"]) == 0
    assert "names no weights" in capsys.readouterr().out
