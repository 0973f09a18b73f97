"""tools.breakdown: kernel names to categories, the per-step summary, and a whole CPU run of the tool."""

from __future__ import annotations

import json

import pytest

from deco_bench.tools import breakdown as bd


@pytest.mark.parametrize("name, expected", [
    ("nvjet_sm90_tst_192x192_64x3_2x1_v_bz_coopB_NNN", "gemm"),
    ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", "gemm"),
    ("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 64, 4>>", "attention"),
    ("triton_per_fused__to_copy_add_mean_mul_pow_rsqrt_0", "fused (triton)"),
    ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<...>", "optimizer"),
    ("void at::native::reduce_kernel<128, 4, at::native::ReduceOp<float>>", "reduction"),
    ("void at::native::vectorized_layer_norm_kernel<float, float, false>", "reduction"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float>>", "elementwise and copies"),
    ("aten::mm", "gemm"),
    ("aten::mul", "elementwise and copies"),
    ("cudaLaunchKernel", "other"),
])
def test_kernel_names_fall_in_their_category(name, expected):
    assert bd.category(name) == expected


def test_summary_adds_up():
    rows = [{"name": "nvjet_a", "category": "gemm", "calls_per_step": 2.0, "ms_per_step": 6.0},
            {"name": "elementwise_b", "category": "elementwise and copies", "calls_per_step": 10.0,
             "ms_per_step": 3.0},
            {"name": "nvjet_c", "category": "gemm", "calls_per_step": 1.0, "ms_per_step": 1.0}]
    s = bd.summarise(rows, wall_ms=20.0, top=2)
    assert s["busy_ms_per_step"] == 10.0 and s["busy_fraction"] == 0.5 and s["launches_per_step"] == 13.0
    assert s["categories"]["gemm"] == {"ms_per_step": 7.0, "kernels": 2, "share_of_busy": 0.7}
    assert list(s["categories"]) == ["gemm", "elementwise and copies"]  # largest first
    assert [r["name"] for r in s["top"]] == ["nvjet_a", "elementwise_b"]


def test_cpu_run_writes_the_breakdown(tmp_path):
    out = tmp_path / "b.json"
    assert bd.main(["--presets", "deco-tiny", "--resolution", "16", "--batch", "2", "--warmup", "1",
                    "--repeats", "2", "--profile-steps", "1", "--device", "cpu", "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["schema"] == bd.SCHEMA and d["peak_flops_per_s"] is None  # float32 on CPU: no bf16 MFU
    e = d["models"]["deco-tiny"]["eager"]
    assert e["s_per_iter"]["n"] == 2 and e["mfu"] is None and "compiled_blocks" not in d["models"]["deco-tiny"]
    names = [r["name"] for r in e["breakdown"]["top"]]
    assert names and not any(n.startswith("Optimizer.") for n in names)  # record_function ranges left out
    assert abs(sum(c["share_of_busy"] for c in e["breakdown"]["categories"].values()) - 1) < 1e-9


def test_unknown_preset_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        bd.main(["--presets", "deco-xxl", "--out", "unused.json"])
    assert e.value.code == 2 and "unknown model preset 'deco-xxl'" in capsys.readouterr().err


def test_a_model_the_machine_cannot_hold_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    """The paper-size default on a CPU machine was killed for memory; now it stops before building anything."""
    from deco_bench.bench import memory_need
    from deco_bench.models import get_preset

    seen = []
    monkeypatch.setattr(memory_need, "available_bytes", lambda device: seen.append(device) or (8e9, "test limit"))
    out = tmp_path / "b.json"
    assert bd.main(["--presets", "deco-xl", "--device", "cpu", "--out", str(out)]) == 2
    need = memory_need.training_need(get_preset("deco-xl", num_classes=1000), batch=32, resolution=256, bf16=False,
                                     encoder="dinov2-b14")
    assert capsys.readouterr().err == (
        f"breakdown: refusing to start: deco-xl at batch 32, 256 px needs about {need.total_bytes / 1e9:.1f} GB "
        f"(weights, gradients, optimiser and EMA {need.states_bytes / 1e9:.1f} GB, REPA encoder "
        f"{need.encoder_bytes / 1e9:.1f} GB, activations {need.activation_bytes / 1e9:.1f} GB) but this machine has "
        f"8.0 GB available (test limit); pass a smaller --presets (e.g. deco-s,baseline-s), --batch or --resolution, "
        f"or run on a GPU with more memory\n")
    assert [d.type for d in seen] == ["cpu"] and not out.exists()
    assert 50e9 < need.total_bytes < 60e9  # float32 on CPU: 682M parameters x 20 bytes + ~41 GB of activations


def test_the_cpu_default_is_the_embedded_pair(monkeypatch, tmp_path, capsys):
    """Without --presets on CPU: deco-s,baseline-s at 32 px, batch 8, and a line saying so (stopped at the memory
    check here, so that nothing is measured)."""
    from deco_bench.bench import memory_need

    monkeypatch.setattr(memory_need, "available_bytes", lambda device: (1.0, "test limit"))
    assert bd.main(["--device", "cpu", "--out", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == ("breakdown: no CUDA device: measuring deco-s,baseline-s at 32 px, batch 8 (the paper's "
                      "deco-xl,baseline-xl need a GPU; --presets chooses)")
    assert len(err) == 2 and err[1].startswith("breakdown: refusing to start: baseline-s at batch 8, 32 px needs ")
