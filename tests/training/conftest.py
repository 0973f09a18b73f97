"""A tiny, fully deterministic training set-up shared by the training tests."""

from __future__ import annotations

import numpy as np
import pytest

from deco_bench.config import ModelEntry, TrainParams


def tiny_arrays(n: int = 32, res: int = 16, classes: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, res, res, 3), dtype=np.uint8)
    labels = (np.arange(n) % classes).astype(np.int64)
    return images, labels


@pytest.fixture
def tiny_dataset():
    from deco_bench.data import ArrayDataset

    return ArrayDataset(*tiny_arrays())


@pytest.fixture
def tiny_train_params() -> TrainParams:
    return TrainParams(steps=6, global_batch=8, lr=1e-3, ema_decay=0.9, repa_align_layer=1, ckpt_every=2,
                       keep_last=10, eval_ckpt_steps=[2, 4], log_every=1)


@pytest.fixture
def tiny_entry() -> ModelEntry:
    return ModelEntry(preset="deco-tiny")
