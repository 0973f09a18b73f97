"""JiT+REPA (paper Table 1): the x-prediction loss and the Euler sampler equal the official `training_repa_JiT.py` and
`EulerSamplerJiT`, and sampling the same network as a v-model (what Baseline_DiT_JiT.yaml's EulerSampler does) gives
another result. Goldens: tests/fixtures/models/make_goldens_pixnerd_jit.py, produced by running the official code."""

import copy
import dataclasses
from pathlib import Path

import pytest
import torch

from deco_bench.config import ConfigError, model_config, parse_params
from deco_bench.diffusion import euler_sample, heun_sample
from deco_bench.diffusion.encoders import SmallEncoder
from deco_bench.diffusion.losses import LossWeights, RepaProjector
from deco_bench.diffusion.path import X_PRED_MIN_GAP, as_velocity, target_velocity, velocity_from_x
from deco_bench.io import safe_torch_load
from deco_bench.models import PixelDiT, build_model
from deco_bench.models.official import config_from_official_yaml, load_official, official_state_dict_to_ours
from deco_bench.models.velocity import VelocityOutput
from deco_bench.profiles import resolve
from deco_bench.training.step import DenoiserWithProjector, step_losses

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
YAML, CKPT = FIXTURES / "official_jit.yaml", FIXTURES / "official_jit.ckpt"
REL_TOL = 1e-5
NULL_LABEL = 10


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    return ((a - ref).abs().max() / ref.abs().max()).item()


@pytest.fixture(scope="module")
def golden():
    torch.set_num_threads(1)
    return safe_torch_load(FIXTURES / "jit_golden.pt")


def jit_net(prefix: str, prediction: str = "x") -> torch.nn.Module:
    cfg = dataclasses.replace(config_from_official_yaml(YAML), prediction=prediction)
    net = build_model(cfg).eval()
    state = safe_torch_load(CKPT)["state_dict"]
    net.load_state_dict(official_state_dict_to_ours(state, cfg.kind, prefix), strict=True)
    return net


def test_official_jit_yaml_is_an_x_predicting_baseline():
    cfg = config_from_official_yaml(YAML)
    assert (cfg.kind, cfg.prediction, cfg.depth, cfg.hidden_size) == ("baseline", "x", 2, 8)


def test_velocity_from_x_closed_form():
    x, eps = torch.randn(3, 3, 8, 8), torch.randn(3, 3, 8, 8)
    t = torch.tensor([0.2, 0.95, 0.99])
    x_t = t.view(-1, 1, 1, 1) * x + (1 - t.view(-1, 1, 1, 1)) * eps
    v = velocity_from_x(x, x_t, t)
    assert torch.allclose(v[:2], (x - eps)[:2], atol=1e-5)  # exact below the floor: (x - x_t) / (1 - t) = x - eps
    assert torch.allclose(v[2], (x - eps)[2] * 0.01 / X_PRED_MIN_GAP, atol=1e-5)  # floored at 1 - t = 0.05
    assert torch.equal(as_velocity(x, x_t, t, "v"), x)
    assert torch.equal(target_velocity(x, eps, x_t, t, "v"), x - eps)
    with pytest.raises(ValueError, match="unknown prediction 'eps'"):
        as_velocity(x, x_t, t, "eps")


def test_jit_loss_matches_official_trainer(golden):
    g = golden["jit_loss"]
    assert g["t"].max() > 0.95 > g["t"].min()  # both sides of the 1 - t >= 0.05 floor are exercised
    net = jit_net("denoiser.")
    projector = RepaProjector(8, 8, 8)
    state = safe_torch_load(CKPT)["state_dict"]
    projector.load_state_dict({k[len("diffusion_trainer.proj.0."):]: v for k, v in state.items()
                               if k.startswith("diffusion_trainer.proj.")})
    fwd = DenoiserWithProjector(net, projector, align_layer=1)
    encoder = SmallEncoder(patch_size=4, dim=8, seed=0)
    with torch.no_grad():
        parts = step_losses(fwd, encoder, g["x"], g["y"], g["raw"], g["t"], g["noise"], LossWeights(freqfm=0.0))
        assert set(parts) == {"fm", "repa", "loss"}
        assert rel_err(parts["fm"], g["fm_loss"]) <= REL_TOL
        assert rel_err(parts["repa"], g["cos_loss"]) <= REL_TOL
        assert rel_err(parts["loss"], g["loss"]) <= REL_TOL
        # The same network trained as a v-model would see another objective.
        v_parts = step_losses(DenoiserWithProjector(jit_net("denoiser.", "v"), projector, 1), encoder, g["x"],
                              g["y"], g["raw"], g["t"], g["noise"], LossWeights(freqfm=0.0))
    assert rel_err(v_parts["fm"], g["fm_loss"]) > 1e-2


CASES = ["nocfg", "cfg_interval", "cfg_shift"]


def trajectory(model, g: dict, case: str) -> torch.Tensor:
    _, steps, cfg, interval, shift = next(c for c in g["cases"] if c[0] == case)
    xs = []
    final = euler_sample(model, g["noise"], g["labels"], num_steps=steps, cfg_scale=cfg, guidance_interval=interval,
                         timeshift=shift, null_label=NULL_LABEL, capture=lambda i, t, x, v: xs.append(x))
    return torch.stack([*xs, final])


@pytest.mark.parametrize("case", CASES)
def test_jit_euler_trajectory_matches_official_euler_sampler_jit(golden, case):
    g = golden["jit_sampling"]
    ours = trajectory(jit_net("ema_denoiser."), g, case)
    assert rel_err(ours, g[f"{case}_jit"]) <= REL_TOL


@pytest.mark.parametrize("case", CASES)
def test_load_official_jit_returns_velocity_and_samples_like_euler_sampler_jit(golden, case):
    # Public API: load_official's module returns v, so euler_sample gives the official EulerSamplerJiT result.
    g = golden["jit_sampling"]
    model = load_official(YAML, CKPT, ema=True)
    assert isinstance(model, VelocityOutput) and isinstance(model.net, PixelDiT) and not model.training
    assert model.prediction == "v" and model.num_classes == 10
    x_t, t, y = g["noise"], torch.full((4,), 0.3), g["labels"]
    with torch.no_grad():
        assert torch.equal(model(x_t, t, y), velocity_from_x(model.net(x_t, t, y), x_t, t))
    assert rel_err(trajectory(model, g, case), g[f"{case}_jit"]) <= REL_TOL


@pytest.mark.parametrize("case", CASES)
def test_sampling_a_jit_model_as_a_v_model_differs(golden, case):
    # The wrong pairing (the x-prediction integrated as a velocity, as the plain EulerSampler named by
    # Baseline_DiT_JiT.yaml does) reproduces the official EulerSampler and is far from the EulerSamplerJiT result.
    g = golden["jit_sampling"]
    wrong = trajectory(jit_net("ema_denoiser.", prediction="v"), g, case)[-1]
    assert rel_err(wrong, g[f"{case}_plain"]) <= REL_TOL
    assert rel_err(wrong, g[f"{case}_jit"][-1]) > 0.1


def test_heun_converts_x_predictions_too(golden):
    g = golden["jit_sampling"]
    kwargs = dict(num_steps=3, cfg_scale=2.0, guidance_interval=(0.0, 1.0), null_label=NULL_LABEL)
    via_wrapper = heun_sample(VelocityOutput(jit_net("ema_denoiser.")), g["noise"], g["labels"], **kwargs)
    native = heun_sample(jit_net("ema_denoiser."), g["noise"], g["labels"], **kwargs)
    as_v = heun_sample(jit_net("ema_denoiser.", prediction="v"), g["noise"], g["labels"], **kwargs)
    assert torch.equal(native, via_wrapper)
    assert rel_err(as_v, native) > 0.1


def test_prediction_is_a_model_entry_arch_key():
    raw = copy.deepcopy(resolve("smoke", Path(__file__).resolve().parents[2] / "experiments"))
    raw["models"]["jit"] = {"preset": "baseline-tiny", "freqfm_weight": 0.0, "arch": {"prediction": "x"}}
    assert model_config(parse_params(raw), "jit").prediction == "x"
    raw["models"]["jit"]["arch"]["prediction"] = "eps"
    with pytest.raises(ConfigError, match=r"^invalid parameter models\.jit\.arch\.prediction: ModelConfig\.prediction "
                                          r"must be one of \('v', 'x'\), got 'eps'"):
        parse_params(raw)
    raw["models"]["jit"] = {"preset": "deco-tiny", "arch": {"prediction": "x"}}
    with pytest.raises(ConfigError, match=r"models\.jit\.arch\.prediction: ModelConfig\.prediction 'x' \(JiT\) is "
                                          r"supported for the baseline and pixnerd networks, not deco"):
        parse_params(raw)
