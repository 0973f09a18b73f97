"""Class-sorted sample files: the detector's two kinds of evidence and the permuted Inception Score."""

import numpy as np
import pytest

from deco_bench.metrics import ordering
from deco_bench.metrics.isc import inception_score


def confident_logits(classes: np.ndarray, num_classes: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1, (classes.size, num_classes))
    logits[np.arange(classes.size), classes] += 8.0
    return logits


def test_labels_in_runs():
    assert ordering.labels_in_runs(np.array([0, 0, 1, 1, 2, 2]))
    assert ordering.labels_in_runs(np.array([5, 5, 1, 1]))  # runs, whatever the class order
    assert not ordering.labels_in_runs(np.array([0, 1, 2, 0, 1, 2]))  # deco-bench's cycling order
    assert not ordering.labels_in_runs(np.array([3, 3, 3]))  # one class: nothing to say
    assert not ordering.labels_in_runs(np.array([1]))


def test_sorted_blocks_are_detected_from_predictions_and_deflate_is():
    # 20 classes, 40 images each, in blocks of 100 images (the ADM split scaled down): 4 blocks of 2.5 classes
    classes = np.repeat(np.arange(20), 40)
    sorted_logits = confident_logits(classes, 20)
    verdict = ordering.detect(None, sorted_logits, split_size=100)
    # neighbouring blocks share one class in five every other pair: mean Jaccard 0.8 / 7
    assert verdict.class_sorted and "blocks share 0.11 of their predicted classes" in verdict.evidence
    shuffled = sorted_logits[np.random.default_rng(1).permutation(classes.size)]
    verdict = ordering.detect(None, shuffled, split_size=100)
    assert not verdict.class_sorted and "share 0.74" in verdict.evidence  # ~5 per class per block, >= 3 counted
    file_order = inception_score(sorted_logits, 100)
    permuted = ordering.permuted_inception_score(sorted_logits, 100)
    assert file_order < 4.0 < 15.0 < permuted  # ~2.5 classes per block vs all 20: the deflation ADM shows
    assert permuted == pytest.approx(inception_score(shuffled, 100), rel=0.05)
    assert ordering.permuted_inception_score(shuffled, 100) == ordering.permuted_inception_score(shuffled, 100)


def test_labels_win_and_small_files_say_why():
    logits = confident_logits(np.arange(10) % 5, 5)
    verdict = ordering.detect(np.repeat(np.arange(5), 2), logits, split_size=100)
    assert verdict.class_sorted and verdict.evidence == "the file's labels come in 5 contiguous runs, one per class"
    verdict = ordering.detect(np.arange(10) % 5, logits, split_size=100)
    assert not verdict.class_sorted
    assert verdict.evidence == "labels not in per-class runs; fewer than two 100-image blocks to compare"
