"""class_accuracy: the fraction of samples the evaluation network assigns to the class they were drawn for."""

import numpy as np
import pytest

from deco_bench.metrics import api
from deco_bench.metrics.frechet import FeatureStats


def _ref(rng, n=40, d=6):
    feats = rng.normal(0, 1, (n, d))
    return api.Reference(pool=FeatureStats.from_features(feats), spatial=None, pool_features=feats)


def test_class_accuracy_closed_form_and_interval():
    rng = np.random.default_rng(0)
    labels = np.arange(40) % 4
    logits = rng.normal(0, 0.1, (40, 4))
    right = np.arange(40) < 30  # 30 of 40 confidently right, 10 confidently wrong
    logits[np.arange(40), np.where(right, labels, (labels + 1) % 4)] += 5
    samples = {"pool": rng.normal(0, 1, (40, 6)), "logits": logits}
    out = api.compute_all(samples, _ref(rng), names=api.EMBED_NAMES, bootstrap=50, seed=3, labels=labels)
    assert out["metrics"]["class_accuracy"] == 0.75
    lo, hi = out["ci"]["class_accuracy"]
    assert lo < 0.75 < hi and 0.5 < lo and hi < 0.95
    again = api.compute_all(samples, _ref(np.random.default_rng(0)), names=api.EMBED_NAMES, bootstrap=50, seed=3,
                            labels=labels)
    assert again["ci"]["class_accuracy"] == out["ci"]["class_accuracy"]  # same seed, same replicates
    # higher is better: a DeCo-vs-baseline comparison reads its sign the right way
    assert "class_accuracy" not in api.LOWER_IS_BETTER


def test_no_labels_or_inception_names_give_no_class_accuracy():
    rng = np.random.default_rng(1)
    samples = {"pool": rng.normal(0, 1, (20, 6)), "logits": rng.normal(0, 1, (20, 4))}
    assert "class_accuracy" not in api.compute_all(samples, _ref(rng), names=api.EMBED_NAMES)["metrics"]
    out = api.compute_all(samples, _ref(rng), names=api.INCEPTION_NAMES, labels=np.arange(20) % 4)
    assert "class_accuracy" not in out["metrics"]  # Inception's 1008 logits are not the samples' classes


@pytest.mark.parametrize("n", [4, 7])
def test_every_sample_right_or_wrong(n):
    rng = np.random.default_rng(n)
    labels = np.arange(n) % 2
    logits = np.eye(2)[labels] * 3
    samples = {"pool": rng.normal(0, 1, (n, 6)), "logits": logits}
    assert api.compute_all(samples, _ref(rng), names=api.EMBED_NAMES, labels=labels)["metrics"][
        "class_accuracy"] == 1.0
    assert api.compute_all(samples, _ref(rng), names=api.EMBED_NAMES, labels=1 - labels)["metrics"][
        "class_accuracy"] == 0.0
