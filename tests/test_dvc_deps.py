"""dvc.yaml lists the code each stage runs: every deco_bench module a stage imports (transitively, including
imports inside functions) is a dependency of that stage, and every code dependency it lists is imported.

Without this, editing a module a stage uses would leave DVC's outputs "up to date" with results the new code
never produced.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "deco_bench"
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def module_file(name: str) -> Path | None:
    """The file of a deco_bench module (package -> its __init__.py), or None for anything else."""
    if name != "deco_bench" and not name.startswith("deco_bench."):
        return None
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports_of(path: Path) -> set[str]:
    """Every deco_bench module `path` imports, at any depth of its code; `from pkg import name` counts `pkg.name`
    when that is a module, else `pkg`."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if module_file(m) is not None}


def closure(module: str) -> set[Path]:
    """The files of `module` and of every deco_bench module it reaches, with the __init__.py of each package on
    the way (Python runs them on import)."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for k in range(1, len(parts) + 1):  # parent packages run first
            f = module_file(".".join(parts[:k]))
            if f is not None and f not in seen:
                seen.add(f)
                todo.extend(imports_of(f))
    return seen


def stage_bodies() -> list[tuple[str, dict]]:
    out = []
    for name, stage in STAGES.items():
        out.append((name, stage.get("do", stage)))
    return out


def code_deps(body: dict) -> list[str]:
    return [d for d in body.get("deps", []) if isinstance(d, str) and d.startswith("deco_bench")]


def covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(ROOT).as_posix()
    return any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("name, body", stage_bodies(), ids=[n for n, _ in stage_bodies()])
def test_every_imported_module_is_a_dependency(name, body):
    m = re.search(r"python -m (deco_bench(?:\.\w+)+)", body["cmd"])
    assert m, f"{name}: its cmd does not run a deco_bench module"
    files = closure(m.group(1))
    missing = sorted(f.relative_to(ROOT).as_posix() for f in files
                     if f.name != "__init__.py" or f.stat().st_size > 0
                     if not covered(f, code_deps(body)))
    assert not missing, f"stage {name!r} imports these files but dvc.yaml does not list them: {missing}"


@pytest.mark.parametrize("name, body", stage_bodies(), ids=[n for n, _ in stage_bodies()])
def test_every_code_dependency_is_imported(name, body):
    m = re.search(r"python -m (deco_bench(?:\.\w+)+)", body["cmd"])
    files = {f.relative_to(ROOT).as_posix() for f in closure(m.group(1))}
    stale = [d for d in code_deps(body)
             if not any(f == d or f.startswith(d.rstrip("/") + "/") for f in files)]
    assert not stale, f"stage {name!r} lists code it does not import: {stale}"


def test_the_walker_sees_function_local_imports(tmp_path):
    files = {f.relative_to(ROOT).as_posix() for f in closure("deco_bench.stages.train")}
    assert "deco_bench/training/loop.py" in files and "deco_bench/io.py" in files
    assert "deco_bench/report/context.py" not in files
