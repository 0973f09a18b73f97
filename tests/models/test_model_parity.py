"""Our DeCo and baseline compute what the official classes compute (goldens from make_goldens.py)."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from deco_bench.io import safe_torch_load
from deco_bench.models import build_model
from deco_bench.models.deco import dct_position_features, from_decoder_tokens, to_decoder_tokens
from deco_bench.models.layers import patchify, rope_2d_angles, timestep_frequencies, unpatchify
from deco_bench.models.official import config_from_official_init_args, official_state_dict_to_ours

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
REL_TOL = 1e-5


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    return ((a - ref).abs().max() / ref.abs().max()).item()


def checksums(x: torch.Tensor) -> torch.Tensor:
    x = x.double()
    return torch.stack([x.sum(), x.pow(2).sum(), x.abs().sum()])


def assert_matches(x: torch.Tensor, golden: dict, what: str) -> None:
    idx = golden["index"].long()
    assert rel_err(x.reshape(-1)[idx], golden["values"]) <= REL_TOL, what
    ours, ref = checksums(x), golden["checksums"]
    # The sum is compared relative to the sum of |x| (it may be near 0); squares and |x| relative to themselves.
    assert abs(ours[0] - ref[0]) <= 1e-6 * ref[2], what
    assert torch.allclose(ours[1:], ref[1:], rtol=REL_TOL, atol=0), what


@pytest.fixture(scope="module", params=["deco", "baseline"])
def golden_model(request):
    return load_golden(request.param)


def load_golden(kind: str):
    """(our model with the official golden's weights, the golden) for tests/fixtures/models/<kind>_golden.pt."""
    torch.set_num_threads(1)
    g = safe_torch_load(FIXTURES / f"{kind}_golden.pt")
    cfg = config_from_official_init_args(g["class_path"], g["init_args"])
    model = build_model(cfg).eval()
    weights = official_state_dict_to_ours({k: v.float() for k, v in g["state_dict"].items()}, cfg.kind, "")
    model.load_state_dict(weights, strict=True)
    return model, g


@pytest.mark.parametrize("case_index", [0, 1], ids=["256px-batch2", "512px-batch1"])
def test_forward_matches_official(golden_model, case_index):
    model, g = golden_model
    case = g["cases"][case_index]
    x = torch.randn(len(case["t"]), 3, case["resolution"], case["resolution"],
                    generator=torch.Generator().manual_seed(case["seed"]))
    assert torch.allclose(checksums(x), case["input_checksums"], rtol=1e-9), "torch.randn stream changed"
    t, y = torch.tensor(case["t"]), torch.tensor(case["y"])
    with torch.no_grad():
        v, features = model.forward_features(x, t, y)
        v_plain = model(x, t, y)
    assert torch.equal(v, v_plain)
    assert_matches(v, case["out"], "forward output")
    assert_matches(features, case["features"], "forward_features second output vs official forward_sx")
    if "out_full_sample0" in case:
        assert rel_err(v[0], case["out_full_sample0"]) <= REL_TOL


def test_null_label_is_last_table_row(golden_model):
    # The 256 px golden case uses y = num_classes (CFG null label) for its second image; the row must exist.
    model, g = golden_model
    assert g["cases"][0]["y"][1] == model.num_classes
    assert model.y_embedder.table.num_embeddings == model.num_classes + 1


def test_patchify_is_unfold_order():
    x = torch.randn(2, 3, 32, 48)
    tokens = patchify(x, 16)
    assert torch.equal(tokens, F.unfold(x, kernel_size=16, stride=16).transpose(1, 2))
    assert torch.equal(unpatchify(tokens, 16, 3, 32, 48), x)


def test_decoder_tokens_per_pixel_match_official_layout():
    # Official: unfold -> (B*L, 3, p*p) -> transpose -> (B*L, p*p, 3).
    x = torch.randn(2, 3, 32, 32)
    official = F.unfold(x, 16, stride=16).transpose(1, 2).reshape(-1, 3, 256).transpose(1, 2)
    assert torch.equal(to_decoder_tokens(x, 16, 1), official)
    for q in (1, 4, 16):
        assert torch.equal(from_decoder_tokens(to_decoder_tokens(x, 16, q), 16, q, 3, 32, 32), x)
    # A 4x4 decoder token holds one 4x4 pixel block: token 1 of patch 0 is rows 0-3, columns 4-7.
    assert torch.equal(to_decoder_tokens(x, 16, 4)[0, 1], x[0, :, 0:4, 4:8].reshape(-1))


def test_dct_position_features_closed_form():
    feats = dct_position_features(16, 8)  # 256 x 64
    f = torch.linspace(0, 8, 8)
    # Pixel (row 0, col 0): cos terms are 1 -> 1 / (1 + f_i f_j).
    assert torch.allclose(feats[0], (1 / (1 + f[:, None] * f[None, :])).reshape(-1))
    # Pixel (row 3, col 5): x = 5/15, y = 3/15; feature index i*8 + j pairs f_i with x and f_j with y.
    i, j = 2, 6
    expected = torch.cos(torch.pi * f[i] * 5 / 15) * torch.cos(torch.pi * f[j] * 3 / 15) / (1 + f[i] * f[j])
    assert torch.allclose(feats[3 * 16 + 5, i * 8 + j], expected, atol=1e-6)


def test_timestep_frequencies_closed_form():
    emb = timestep_frequencies(torch.tensor([0.0, 1.0]))
    assert torch.equal(emb[0], torch.cat([torch.ones(128), torch.zeros(128)]))
    # max_period 10: the last frequency is 10^(-127/128).
    assert torch.allclose(emb[1, 127], torch.cos(torch.tensor(10 ** (-127 / 128))))


def test_rope_positions_span_is_resolution_independent():
    # The last token column is at position 16 for 16 and for 32 tokens per row (docs/paper.md §5.1).
    a16, a32 = rope_2d_angles(64, 16, 16), rope_2d_angles(64, 32, 32)
    assert torch.allclose(a16[15, 0], torch.tensor(16.0)) and torch.allclose(a32[31, 0], torch.tensor(16.0))
    assert torch.allclose(a32[1, 0], torch.tensor(16 / 31))
    assert a16[15, 1] == 0  # pair 1 rotates with y, which is 0 in the first row
