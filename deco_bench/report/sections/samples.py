"""The samples section: each model's sample grid (made by report.inputs from previews/<m>.npz) with class names."""

from __future__ import annotations

from typing import Any

from deco_bench.report.inputs import not_ran


def samples_section(grids: dict, models: list[dict], data_info: Any) -> dict:
    if not grids:
        return not_ran("sample", "previews/<model>.npz")
    names = (data_info or {}).get("class_names") or []
    label = {m["key"]: m["label"] for m in models}
    out = []
    for m, g in grids.items():
        out.append({"model": m, "label": label.get(m, m), "uri": g["uri"], "width": g["width"],
                    "height": g["height"], "per_class": g["per_class"], "num_images": g["num_images"],
                    "path": g["path"],
                    "classes": [names[c] if c < len(names) else f"class {c}" for c in g["classes"]]})
    missing = [m["key"] for m in models if m["key"] not in grids]
    return {"ran": True, "grids": out,
            "missing": [f"{label.get(m, m)}: the sample stage did not run (no previews/{m}.npz)."
                        for m in missing]}
