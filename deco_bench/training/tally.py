"""The loss values of a training step, kept on the device until something reads or writes them.

Reading a CUDA tensor's value (`float(t)`, `.item()`, `if torch.isfinite(t)`) makes the CPU wait for the GPU, so
the next step's kernels cannot be queued while this one runs. The loop therefore only adds each micro-batch's
losses here, on the device, and reads them where it writes: the log line, a checkpoint, an evaluation checkpoint.
Before any of those, `check()` raises NonFiniteLossError if a loss since the last check was NaN or Inf, naming the
first such step, so no file is ever written from weights a non-finite loss has touched.

The sums are accumulated in float64 and logged through float32, as the loop did with Python floats.
"""

from __future__ import annotations

from pathlib import Path

import torch

from deco_bench.io import DecoBenchError


class NonFiniteLossError(DecoBenchError):
    """The loss became NaN or Inf; training stopped and the last good checkpoint was kept."""


class StepTally:
    def __init__(self, device: torch.device):
        self.device = device
        self.sums: dict[str, torch.Tensor] = {}
        self._keys: tuple[str, ...] | None = None
        self._first_bad: torch.Tensor | None = None  # (step, micro-batch, *loss parts) of the first non-finite loss

    def start_step(self) -> None:
        self.sums = {}

    def add(self, parts: dict[str, torch.Tensor], *, step: int, micro: int, grad_accum: int) -> None:
        """One micro-batch's losses (`parts` as step_losses returns them) of global step index `step`."""
        values = torch.stack([v.detach().double() for v in parts.values()])
        for k, v in zip(parts, values):
            self.sums[k] = self.sums[k] + v / grad_accum if k in self.sums else v / grad_accum
        # fill kernels, not a copy from host memory (a blocking copy would wait for the device)
        record = torch.cat([torch.full_like(values[:1], step + 1), torch.full_like(values[:1], micro), values])
        if self._first_bad is None or self._keys != tuple(parts):
            self._keys = tuple(parts)
            self._first_bad = torch.full_like(record, -1.0)
        new = (~torch.isfinite(values[list(parts).index("loss")])) & (self._first_bad[0] < 0)
        self._first_bad = torch.where(new, record, self._first_bad)

    def check(self, *, rank: int, lr: float, ckpt_dir: Path) -> None:
        """Raise NonFiniteLossError if a loss since the last check was not finite (this waits for the device)."""
        if self._first_bad is None:
            return
        bad = self._first_bad.tolist()
        if bad[0] < 0:
            return
        parts = dict(zip(self._keys or (), bad[2:]))
        raise NonFiniteLossError(
            f"non-finite loss at step {int(bad[0])} (micro-batch {int(bad[1])}, rank {rank}): {parts}; lr={lr}; "
            f"the last good checkpoint in {ckpt_dir} was kept")

    def step_sums(self) -> dict[str, torch.Tensor]:
        """This step's loss parts, averaged over its micro-batches, as float32 device tensors (no wait)."""
        return {k: v.float() for k, v in self.sums.items()}


__all__ = ["NonFiniteLossError", "StepTally"]
