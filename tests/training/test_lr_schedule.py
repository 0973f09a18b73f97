"""train.lr_warmup and train.lr_schedule: closed forms of the learning rate per step."""

import dataclasses
import math

import pytest

from deco_bench.config import TrainParams
from deco_bench.training.loop import lr_at


def test_constant_without_warmup_is_the_papers():
    tp = TrainParams()
    assert [lr_at(tp, s) for s in (0, 1, 299)] == [tp.lr] * 3


def test_warmup_then_cosine_to_zero():
    tp = dataclasses.replace(TrainParams(), lr=1e-3, steps=120, lr_warmup=20, lr_schedule="cosine")
    assert lr_at(tp, 0) == pytest.approx(1e-3 / 20) and lr_at(tp, 19) == pytest.approx(1e-3)
    assert lr_at(tp, 20) == pytest.approx(1e-3)  # cosine starts at the peak
    assert lr_at(tp, 70) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(tp, 119) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 99 / 100)))
    assert all(lr_at(tp, s) >= lr_at(tp, s + 1) for s in range(20, 119))
    warm_constant = dataclasses.replace(tp, lr_schedule="constant")
    assert lr_at(warm_constant, 119) == 1e-3 and lr_at(warm_constant, 9) == pytest.approx(5e-4)
