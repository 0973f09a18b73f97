"""pytest-benchmark suite for the hot paths (not part of `make test`; run with `make bench`).

Hot paths at the embedded size: one training step (forward, losses, backward, AdamW, EMA) of DeCo and of the
baseline, one Euler sampler step with and without CFG, the pixel decoder alone, the FreqFM loss, feature
extraction of the embedded evaluation network, and the build of the embedded dataset at the default size. On CUDA
every measured call ends in a device synchronise, so the timer sees finished work (pytest-benchmark knows nothing
of GPUs).

Saved baselines live in bench/baselines/pytest (see bench/baselines/README.md for the commands).
"""

from __future__ import annotations

import pytest
import torch

from deco_bench.bench.runner import Recipe, build_sampler_run, build_train_step
from deco_bench.bench.timing import synchronize
from deco_bench.models import build_model, get_preset

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
DTYPE = torch.bfloat16 if DEVICE.type == "cuda" else None
RES = 32


def synced(fn):
    def call():
        fn()
        synchronize(DEVICE)
    return call


@pytest.fixture(autouse=True, scope="module")
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # stable CPU numbers on a shared machine
    yield
    torch.set_num_threads(old)


@pytest.mark.parametrize("preset", ["deco-s", "baseline-s"])
def test_train_step(benchmark, preset):
    cfg = get_preset(preset, num_classes=8)
    recipe = Recipe(freqfm_weight=1.0 if cfg.kind == "deco" else 0.0, repa_align_layer=2, repa_encoder="small")
    step = build_train_step(cfg, recipe, batch=8, resolution=RES, device=DEVICE, dtype=DTYPE, compile=False)
    benchmark.pedantic(synced(step), rounds=8, warmup_rounds=1)


@pytest.mark.parametrize("cfg_scale", [1.0, 3.2])
@pytest.mark.parametrize("preset", ["deco-s", "baseline-s"])
def test_sampler_step(benchmark, preset, cfg_scale):
    cfg = get_preset(preset, num_classes=8)
    net = build_model(cfg).to(DEVICE).eval()
    # a 2-step run guided on (0, 1] = one unguided and one guided step; with CFG 1.0 two unguided steps
    run = build_sampler_run(net, cfg, num_steps=2, cfg_scale=cfg_scale, guidance_interval=(0.0, 1.0), batch=4,
                            resolution=RES, device=DEVICE, dtype=DTYPE)
    benchmark.pedantic(synced(run), rounds=10, warmup_rounds=1)


def test_pixel_decoder(benchmark):
    cfg = get_preset("deco-s", num_classes=8)
    decoder = build_model(cfg).decoder.to(DEVICE)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, RES, RES, generator=g).to(DEVICE)
    s = torch.randn(8, (RES // cfg.patch_size) ** 2, cfg.hidden_size, generator=g).to(DEVICE)

    def fwd_bwd():
        decoder.zero_grad(set_to_none=True)
        decoder(x, s).square().mean().backward()

    benchmark.pedantic(synced(fwd_bwd), rounds=10, warmup_rounds=1)


def test_freqfm_loss(benchmark):
    from deco_bench.diffusion.losses import freq_fm_loss

    g = torch.Generator().manual_seed(0)
    pred = torch.randn(32, 3, RES, RES, generator=g).to(DEVICE).requires_grad_(True)
    target = torch.randn(32, 3, RES, RES, generator=g).to(DEVICE)

    def loss_and_grad():
        pred.grad = None
        freq_fm_loss(pred, target, 85, 1.0).backward()

    benchmark.pedantic(synced(loss_and_grad), rounds=20, warmup_rounds=2)


def test_feature_extraction(benchmark):
    import numpy as np

    from deco_bench.metrics import embed_net

    torch.manual_seed(0)
    model = embed_net.EmbedNet(embed_net.EmbedNetConfig(num_classes=8)).eval()
    images = np.random.default_rng(0).integers(0, 256, (128, RES, RES, 3), dtype=np.uint8)
    benchmark.pedantic(lambda: embed_net.extract(model, images), rounds=8, warmup_rounds=1)


def test_embedded_dataset_build(benchmark):
    from deco_bench.data import build_embedded_dataset
    from deco_bench.data.embedded import load_photo

    load_photo("astronaut")  # scikit-image's one-off import stays out of the measurement
    benchmark.pedantic(lambda: build_embedded_dataset(resolution=32, num_classes=8, train_per_class=128,
                                                      ref_per_class=64, seed=0), rounds=3, warmup_rounds=0)
