"""Shared fixtures: official-code goldens and the deterministic stand-in nets they were produced with."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "diffusion"


def _load_reference_nets():
    spec = importlib.util.spec_from_file_location("diffusion_reference_nets", FIXTURES / "reference_nets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def ref():
    """tests/fixtures/diffusion/reference_nets.py (TinyVelocityNet, synthetic DINOv2 weights)."""
    return _load_reference_nets()


@pytest.fixture(scope="session")
def goldens():
    """Outputs of the official code, made by tests/fixtures/diffusion/make_goldens.py."""
    return torch.load(FIXTURES / "goldens.pt", weights_only=True)
