"""The provenance section: git revision, dvc.lock hashes, params.yaml, versions, hardware and file dates."""

from __future__ import annotations

import yaml


def provenance_section(prov: dict, params: dict) -> dict:
    lock = prov.get("dvc_lock") or {}
    stages = []
    for name, st in (lock.get("stages") or {}).items():
        files = []
        for kind in ("deps", "outs"):
            for d in st.get(kind) or []:
                files.append({"kind": kind[:-1], "path": d.get("path", "?"), "md5": d.get("md5", d.get("hash", "?"))})
        stages.append({"name": name, "files": files})
    return {"git_rev": prov.get("git_rev") or "not a git checkout (no revision)",
            "git_dirty": prov.get("git_dirty", False),
            "dvc_lock": stages, "dvc_lock_message": "" if stages else "No dvc.lock (the pipeline has not run under "
                                                                      "DVC), so input hashes are not available.",
            "params_yaml": yaml.safe_dump(params, sort_keys=False) if params else "No params.yaml found.",
            "versions": prov.get("versions") or {}, "hardware": prov.get("hardware") or {},
            "dates": [{"path": k, "date": v} for k, v in sorted((prov.get("dates") or {}).items())]}
