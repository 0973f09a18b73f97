"""Is a sample file sorted by class? ADM's Inception Score depends on the answer.

ADM's evaluator splits the file into consecutive blocks of 5,000 images, in file order, and averages the score of
the blocks. In a file written class by class (the official DeCo sampler writes its 50,000 images that way), each
block holds ~100 classes, its marginal p(y) is narrow and the score collapses (docs/paper.md §6). deco-bench's own
sample sets cycle through the classes (image i has class i mod C), so every block holds every class.

Two kinds of evidence, either suffices:
- labels stored in the file (`arr_1`, ADM's name, or `labels`, deco-bench's) that come in contiguous runs, one run
  per class;
- predicted classes: with at least two blocks, the classes predicted at least `MIN_HITS` times in a block are
  compared between consecutive blocks; a mean Jaccard overlap under `SORTED_OVERLAP` means the blocks hold different
  classes. In a shuffled ImageNet file the overlap is close to 1; in a class-sorted one close to 0.

`PERMUTATION_SEED`: the fixed permutation under which the order-independent IS is reported
(`numpy.random.default_rng(0).permutation(n)`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deco_bench.metrics.isc import ADM_SPLIT_SIZE, inception_score

MIN_HITS = 3
SORTED_OVERLAP = 0.5
PERMUTATION_SEED = 0


@dataclass(frozen=True)
class Ordering:
    class_sorted: bool
    evidence: str  # one sentence: what was looked at and what it showed

    def as_dict(self) -> dict:
        return {"class_sorted": self.class_sorted, "evidence": self.evidence}


def labels_in_runs(labels: np.ndarray) -> bool:
    """True when every class occupies one contiguous run and there are at least two classes."""
    labels = np.asarray(labels).reshape(-1)
    if labels.size < 2:
        return False
    changes = int((labels[1:] != labels[:-1]).sum())
    classes = int(np.unique(labels).size)
    return classes > 1 and changes == classes - 1


def block_overlap(predicted: np.ndarray, split_size: int = ADM_SPLIT_SIZE) -> float | None:
    """Mean Jaccard overlap of the frequently predicted classes of consecutive blocks; None with < 2 full blocks."""
    predicted = np.asarray(predicted).reshape(-1)
    blocks = [predicted[s:s + split_size] for s in range(0, predicted.size - split_size + 1, split_size)]
    if len(blocks) < 2:
        return None
    sets = []
    for b in blocks:
        classes, counts = np.unique(b, return_counts=True)
        sets.append(set(classes[counts >= MIN_HITS].tolist()))
    overlaps = [len(a & b) / len(a | b) if a | b else 1.0 for a, b in zip(sets, sets[1:])]
    return float(np.mean(overlaps))


def detect(labels: np.ndarray | None, logits: np.ndarray, split_size: int = ADM_SPLIT_SIZE) -> Ordering:
    if labels is not None and labels_in_runs(labels):
        n = int(np.unique(labels).size)
        return Ordering(True, f"the file's labels come in {n} contiguous runs, one per class")
    overlap = block_overlap(np.asarray(logits).argmax(axis=1), split_size)
    if overlap is not None and overlap < SORTED_OVERLAP:
        return Ordering(True, f"consecutive {split_size}-image blocks share {overlap:.2f} of their predicted "
                              f"classes (Jaccard; a shuffled file shares nearly all)")
    told = ("labels not in per-class runs" if labels is not None else "no label array")
    seen = (f"consecutive blocks share {overlap:.2f} of their predicted classes" if overlap is not None
            else f"fewer than two {split_size}-image blocks to compare")
    return Ordering(False, f"{told}; {seen}")


def permuted_inception_score(logits: np.ndarray, split_size: int = ADM_SPLIT_SIZE) -> float:
    """IS after the fixed permutation default_rng(PERMUTATION_SEED).permutation(n): independent of file order."""
    logits = np.asarray(logits)
    order = np.random.default_rng(PERMUTATION_SEED).permutation(logits.shape[0])
    return inception_score(logits[order], split_size)
