"""bench/summary.json (the bench stage's DVC metrics): the headline figures and ratios of bench/results.json, numbers
only, a figure that was not measured left out."""

from __future__ import annotations

from deco_bench.bench.summary import summarise
from deco_bench.io import numbers_only


def _model(train_ips: float, sample_ips: dict, cuda_peak: int | None) -> dict:
    return {"train": {"images_per_s": {"median": train_ips},
                      "memory": {"cuda_peak_allocated_bytes": cuda_peak, "host_rss_peak_bytes": 10**9}},
            "sample": {"euler50": {f"batch_{b}": {"images_per_s": {"median": v}} for b, v in sample_ips.items()},
                       "euler100_cfg": {"batch_64": {"images_per_s": {"median": 99.0}}}}}


def test_gpu_case_gives_figures_and_ratios_of_the_first_case_at_the_largest_batch():
    deco, base = _model(200.0, {1: 5.0, 4: 12.0, 32: 30.0}, 2 * 2**30), _model(100.0, {1: 4.0, 4: 9.0, 32: 20.0}, 2**30)
    ratios = {"train.images_per_s.median": 2.0, "sample.euler50.batch_32.images_per_s.median": 1.5,
              "train.memory.cuda_peak_allocated_bytes": 2.0, "train.memory.host_rss_peak_bytes": 1.0}
    result = {"cases": {"256px/eager": {"models": {"deco": deco, "baseline": base}, "ratios": {"deco/baseline": ratios}},
                        "256px/full": {"models": {"deco": _model(1.0, {1: 1.0}, 1)}, "ratios": {}}}}
    s = summarise(result)
    assert s == {"deco_train_images_per_s": 200.0, "deco_sample_images_per_s": 30.0,  # batch_32, not batch_4
                 "deco_train_peak_bytes": 2.0 * 2**30, "baseline_train_images_per_s": 100.0,
                 "baseline_sample_images_per_s": 20.0, "baseline_train_peak_bytes": 2.0**30,
                 "deco_over_baseline_train_images_per_s": 2.0, "deco_over_baseline_sample_images_per_s": 1.5,
                 "deco_over_baseline_train_peak_bytes": 2.0}
    assert numbers_only(s) == s


def test_cpu_case_leaves_out_what_was_not_measured_and_no_cases_is_empty():
    deco, base = _model(80.0, {1: 3.0, 4: 3.2}, None), _model(90.0, {1: 2.5, 4: 2.6}, None)
    s = summarise({"cases": {"32px/eager": {"models": {"deco": deco, "baseline": base},
                                            "ratios": {"deco/baseline": {"train.images_per_s.median": 80 / 90}}}}})
    assert not any("peak" in k for k in s) and s["deco_sample_images_per_s"] == 3.2
    assert s["deco_over_baseline_train_images_per_s"] == 80 / 90 and "deco_over_baseline_sample_images_per_s" not in s
    assert summarise({"cases": {}}) == {} and summarise({}) == {}
    errored = summarise({"cases": {"32px/eager": {"models": {"deco": {"error": "out of memory"}}, "ratios": {}}}})
    assert errored == {}
