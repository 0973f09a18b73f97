"""Stage `hardware`: the fingerprint of the machine the timing stages run on (always re-run, cheap).

DVC knows nothing about hardware: without this, a timing measured on one machine would count as up to date on
another. This stage runs every time and writes bench/hardware.json; when its content changes (another CPU or GPU,
another torch), the bench stage that depends on it runs again. When it does not, nothing downstream re-runs.
"""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from deco_bench.bench.env import hardware
from deco_bench.io import atomic_write_json
from deco_bench.stages import _common
from deco_bench.training.distributed import resolve_device


def run(params_path: str, out: Path) -> None:
    p = _common.setup(params_path)
    device = resolve_device(p.run.device)
    atomic_write_json(out, {"hardware": hardware(device), "torch": torch.__version__, "cuda": torch.version.cuda,
                            "python": platform.python_version()})


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--out", type=Path, default=Path("bench/hardware.json"))
    args = ap.parse_args()
    _common.main_wrapper(lambda: run(args.params, args.out))


if __name__ == "__main__":
    main()
