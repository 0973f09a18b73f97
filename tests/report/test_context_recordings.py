"""Only bench-stage results are recordings: other GPU checks kept beside them are not read as bench tables."""

from __future__ import annotations

import json

from deco_bench.report import inputs


def test_other_schemas_are_not_recordings(tmp_path):
    rec = tmp_path / "bench" / "recordings"
    rec.mkdir(parents=True)
    (rec / "a.json").write_text(json.dumps({"schema": inputs.BENCH_SCHEMA, "cases": {},
                                            "recording": {"date": "2026-11-27", "note": "n"}}))
    (rec / "b.json").write_text(json.dumps({"schema": "deco-bench/vs-official/1", "cases": {"deco": {}}}))
    (rec / "c.json").write_text(json.dumps({"cases": {}}))  # no schema: an older recording, still read
    files = [r["file"] for r in inputs.load_inputs(tmp_path, environment=False)["bench_recordings"]]
    assert files == ["bench/recordings/a.json", "bench/recordings/c.json"]
