"""The training loop: flow matching with FreqFM and REPA, AdamW, float32 EMA, bf16 autocast on CUDA, gradient
accumulation, optional torch.compile, DDP under torchrun, atomic resumable checkpoints.

Determinism. Which images make up global step k, and the noise, t and label dropout of each of them, depend only
on (seed, k) and the image's position in the global batch -- never on the rank or the number of processes. Every
rank draws the whole global batch's randomness from the step's generator and keeps its slice, so N processes
compute the same losses as one process with the same global batch, and a resumed run continues exactly where an
uninterrupted one would be.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from deco_bench.config import ModelEntry, TrainParams
from deco_bench.diffusion import losses, path
from deco_bench.io import DISK_FULL_ERRNOS, DecoBenchError, DiskSpaceError, atomic_torch_save, atomic_write_text
from deco_bench.models.loading import load_weights_strict
from deco_bench.training import checkpoint as ckpt
from deco_bench.training.distributed import DistInfo, all_reduce_mean
from deco_bench.training.ema import EMA
from deco_bench.training.resume import LOG_NAME
from deco_bench.training.compile import prepare as prepare_compiled
from deco_bench.training.step import DenoiserWithProjector, adamw, autocast, autocast_dtype, drop_labels
from deco_bench.training.tally import NonFiniteLossError, StepTally  # noqa: F401 (NonFiniteLossError: re-exported)


class Preempted(DecoBenchError):
    """SIGTERM or SIGINT (Ctrl-C) arrived; a checkpoint was written and the run stopped (re-run to resume)."""


# A scheduler's pre-emption (SIGTERM) and Ctrl-C (SIGINT) both end the current step, write a checkpoint and stop.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class TrainResult:
    step: int
    resumed_from: int
    log: list[dict] = field(default_factory=list)


def lr_at(tp: TrainParams, step: int) -> float:
    """The learning rate of 0-based `step`: linear warm-up over tp.lr_warmup steps, then constant or cosine to 0
    at tp.steps (a warm-up longer than the run simply never reaches the peak). A pure function of the step, so a
    resumed run continues the same schedule."""
    if tp.lr_warmup and step < tp.lr_warmup:
        return tp.lr * (step + 1) / tp.lr_warmup
    if tp.lr_schedule == "cosine":
        span = max(1, tp.steps - tp.lr_warmup)
        return tp.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - tp.lr_warmup) / span)))
    return tp.lr


def step_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    """The one generator of global step `step` (same on every rank)."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + step) % (2**63 - 1))
    return g


@functools.lru_cache(maxsize=2)
def _epoch_permutation(seed: int, epoch: int, num_items: int) -> torch.Tensor:
    return torch.randperm(num_items, generator=torch.Generator().manual_seed(seed * 7_919 + epoch))


def batch_indices(seed: int, step: int, global_batch: int, num_items: int) -> torch.Tensor:
    """Dataset indices of global step `step`: consecutive slices of one seeded permutation per epoch."""
    start = step * global_batch
    out: list[int] = []
    while len(out) < global_batch:
        epoch, offset = divmod(start + len(out), num_items)
        out.extend(_epoch_permutation(seed, epoch, num_items)[offset: offset + global_batch - len(out)].tolist())
    return torch.tensor(out, dtype=torch.long)


def micro_slice(a: int, rank: int, world: int, micro: int) -> slice:
    """This rank's rows of the global batch in micro-step a (the same rows on any process count)."""
    lo = (a * world + rank) * micro
    return slice(lo, lo + micro)


class _MicroBatches(Sampler):
    """This rank's micro-batches from step `start` on: micro-step a of step k takes its slice of batch_indices(k)."""

    def __init__(self, seed: int, start: int, steps: int, global_batch: int, num_items: int, grad_accum: int,
                 world: int, rank: int):
        self.args = (seed, start, steps, global_batch, num_items, grad_accum, world, rank)

    def __iter__(self):
        seed, start, steps, global_batch, num_items, grad_accum, world, rank = self.args
        micro = global_batch // (world * grad_accum)
        for step in range(start, steps):
            idx = batch_indices(seed, step, global_batch, num_items)
            for a in range(grad_accum):
                yield idx[micro_slice(a, rank, world, micro)].tolist()

    def __len__(self) -> int:
        seed, start, steps, global_batch, num_items, grad_accum, world, rank = self.args
        return max(steps - start, 0) * grad_accum


def _collate(items: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.stack([torch.as_tensor(it[0]) for it in items])
    y = torch.tensor([int(it[1]) for it in items], dtype=torch.long)
    raw = torch.stack([torch.as_tensor(it[2]) for it in items])
    return x, y, raw


def _ignore_ctrl_c(_worker_id: int) -> None:
    """DataLoader workers share the terminal's process group: Ctrl-C must reach only the training process (which
    checkpoints), not kill the workers it still needs to finish the step."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _append_line(f, path: Path, line: str) -> None:
    """One log line, flushed; a full disk is a DiskSpaceError (the lines after the last checkpoint are redone)."""
    try:
        f.write(line + "\n")
        f.flush()
    except OSError as e:
        if e.errno in DISK_FULL_ERRNOS:
            raise DiskSpaceError(f"{path}: the disk is full ({e.strerror}); the checkpoints written so far are "
                                 f"intact: free some space and run the same command again to resume") from e
        raise


def train(
    net: nn.Module,
    dataset: Dataset,
    *,
    tp: TrainParams,
    entry: ModelEntry,
    seed: int,
    out_dir: str | Path,
    dist_info: DistInfo,
    encoder: nn.Module | None,
    null_label: int,
    meta: dict[str, Any],
    progress: Callable[[int, int], Any] | None = None,
    init_state: dict[str, torch.Tensor] | None = None,
    on_log: Callable[[list[dict]], Any] | None = None,
) -> TrainResult:
    """Train `net` on `dataset` (items (x in [-1, 1], label, raw in [0, 1])) until tp.steps, resuming if possible.

    Writes to out_dir: ckpt/step_*.pt (resume points, rotated), eval_ckpts/step_*.pt (EMA weights on the
    tp.eval_ckpt_steps schedule), train_log.jsonl (one line per logged step), final.pt (EMA weights at the end).
    `meta` (resolved params, model config) is stored in every checkpoint and must match on resume.
    `init_state` (weights for `net`, e.g. another run's EMA) replaces the random init of a run that starts at step 0;
    the EMA starts from the same weights.
    `on_log` (main process only) is called with the log records so far (after a resume: the kept ones first) right
    after each logged step's line is written: the train stage rewrites its live progress files from it.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = dist_info.device
    world, rank = dist_info.world_size, dist_info.rank
    micro = tp.global_batch // (world * tp.grad_accum)

    # ---- model, projector, optimiser, EMA ------------------------------------------------------------------
    if init_state is not None:
        load_weights_strict(net, init_state, "init_from weights")
    net = net.to(device)
    use_repa = encoder is not None and entry.repa_weight > 0
    projector = None
    if use_repa:
        torch.manual_seed(seed + 17)  # projector init is part of the run's definition
        projector = losses.RepaProjector(net.hidden_size, net.hidden_size, encoder.out_dim).to(device)
        encoder = encoder.to(device).eval().requires_grad_(False)
    module = DenoiserWithProjector(net, projector, tp.repa_align_layer).to(device)
    loss_weights = losses.LossWeights(freqfm=entry.freqfm_weight, repa=entry.repa_weight if use_repa else 0.0,
                                      freq_quality=entry.freqfm_quality, freq_gamma=entry.freqfm_gamma)
    ema = EMA(net, tp.ema_decay)
    opt = adamw(module.parameters(), lr=tp.lr, betas=(tp.beta1, tp.beta2), weight_decay=tp.weight_decay, device=device)

    # ---- resume ---------------------------------------------------------------------------------------------
    start_step = 0
    state = ckpt.latest_checkpoint(out_dir / "ckpt")
    if state is not None:
        if state.get("meta", {}).get("fingerprint") != meta.get("fingerprint"):
            raise DecoBenchError(
                f"{out_dir / 'ckpt'} holds checkpoints of a different configuration (the parameters or model changed); "
                f"delete that folder to start over, or restore the parameters to resume")
        load_weights_strict(module, state["module"], "checkpoint module weights")
        try:
            ema.load_state_dict(state["ema"])
            opt.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as e:
            raise ckpt.CorruptFileError(
                f"{out_dir / 'ckpt'}: the newest checkpoint's EMA or optimiser state does not fit this model "
                f"({type(e).__name__}: {' '.join(str(e).split())[:160]}); delete it to resume from the one before") from e
        start_step = int(state["step"])
        if start_step > tp.steps:  # resume.reconcile removes such points first; never report later weights
            raise DecoBenchError(
                f"{out_dir / 'ckpt'}: the newest checkpoint is at step {start_step}, past train.steps={tp.steps}; "
                f"run the train stage (it rewinds) or delete that folder")
    resumed_from = start_step

    train_module: nn.Module = module
    if world > 1:
        train_module = nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None)
    fwd = train_module  # train.compile / activation_checkpointing: training/compile.py
    objective = prepare_compiled(net, train_module, mode=tp.compile, activation_checkpointing=tp.activation_checkpointing,
                                 input_shape=tuple(torch.as_tensor(dataset[0][0]).shape))
    tally = StepTally(device)  # losses stay on the device until a log line or a checkpoint reads them

    # ---- log: keep only lines up to the resume step (a killed run may have logged past its checkpoint) -------
    log_path = out_dir / LOG_NAME
    log_lines: list[dict] = []
    if dist_info.is_main and log_path.exists():
        for line in log_path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut by a kill
            if rec.get("step", math.inf) <= start_step:
                log_lines.append(rec)
        # atomically: a kill during this rewrite must not lose the lines before the checkpoint
        atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in log_lines))
    log_f = open(log_path, "a") if dist_info.is_main else None

    # ---- pre-emption: SIGTERM or Ctrl-C -> checkpoint at the end of the current step, then stop -------------
    stop: dict[str, Any] = {"signal": None}
    old_handlers: dict[int, Any] = {}
    for sig in STOP_SIGNALS:
        try:
            old_handlers[sig] = signal.signal(sig, lambda signum, _frame: stop.__setitem__("signal", signum))
        except ValueError:  # not the main thread
            pass

    def save(step_done: int) -> None:
        tally.check(rank=rank, lr=tp.lr, ckpt_dir=out_dir / "ckpt")
        if dist_info.is_main:
            ckpt.save_checkpoint(out_dir / "ckpt", step_done, {
                "module": module.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(), "meta": meta,
            }, keep_last=tp.keep_last)

    elapsed_before = float(log_lines[-1]["elapsed_s"]) if log_lines else 0.0
    sample_shape = tuple(torch.as_tensor(dataset[0][0]).shape)
    # Images are read (and, for ImageNet, decoded) by DataLoader workers; which images each micro-batch holds is
    # decided by _MicroBatches alone, so the order does not depend on the number of workers.
    batches = iter(DataLoader(
        dataset, batch_sampler=_MicroBatches(seed, start_step, tp.steps, tp.global_batch, len(dataset), tp.grad_accum,
                                             world, rank),
        collate_fn=_collate, num_workers=tp.num_workers, pin_memory=device.type == "cuda",
        worker_init_fn=_ignore_ctrl_c if tp.num_workers else None))
    t_start = time.perf_counter()
    try:
        for step in range(start_step, tp.steps):
            t_step = time.perf_counter()
            # ---- the global batch's data and randomness (identical on every rank) ---------------------------
            g = step_generator(seed, step, device)
            t_all = path.sample_t(tp.global_batch, generator=g, lognorm=tp.lognorm_t, shift=tp.timeshift, device=device)
            keep = torch.rand(tp.global_batch, generator=g, device=device) >= entry.null_condition_p
            eps_all = torch.randn((tp.global_batch, *sample_shape), generator=g, device=device)
            opt.zero_grad(set_to_none=True)
            lr = lr_at(tp, step)
            for group in opt.param_groups:
                group["lr"] = lr
            tally.start_step()
            for a in range(tp.grad_accum):
                sl = micro_slice(a, rank, world, micro)
                x, y, raw = (v_.to(device, non_blocking=True) for v_ in next(batches))
                eps = eps_all[sl]
                t = t_all[sl]
                y = drop_labels(y, keep[sl], null_label)
                sync = nullcontext() if (world == 1 or a == tp.grad_accum - 1) else train_module.no_sync()
                with sync:
                    with autocast(device, autocast_dtype(tp.precision, device)):
                        parts = objective(fwd, encoder if use_repa else None, x, y, raw, t, eps, loss_weights)
                    loss = parts["loss"] / tp.grad_accum
                    tally.add(parts, step=step, micro=a, grad_accum=tp.grad_accum)
                    loss.backward()
            if tp.grad_clip > 0:
                grad_norm = torch.nn.utils.clip_grad_norm_(module.parameters(), tp.grad_clip)  # read when logged
            else:
                grad_norm = float("nan")
            opt.step()
            ema.update(net)
            done = step + 1

            # ---- bookkeeping: logs, eval checkpoints, resume checkpoints ------------------------------------
            if done % tp.log_every == 0 or done == tp.steps:
                tally.check(rank=rank, lr=lr, ckpt_dir=out_dir / "ckpt")
                reduced = {k: float(all_reduce_mean(v_)) for k, v_ in tally.step_sums().items()}
                dt = time.perf_counter() - t_step
                rec = {"step": done, **reduced, "lr": lr, "images_per_s": tp.global_batch / max(dt, 1e-9),
                       "images_seen": done * tp.global_batch,
                       "elapsed_s": elapsed_before + time.perf_counter() - t_start}
                if tp.grad_clip > 0:
                    rec["grad_norm"] = float(grad_norm)
                if log_f is not None:
                    _append_line(log_f, log_path, json.dumps(rec))
                log_lines.append(rec)
                if on_log is not None and dist_info.is_main:
                    on_log(log_lines)
            if done in tp.eval_ckpt_steps and dist_info.is_main:
                tally.check(rank=rank, lr=lr, ckpt_dir=out_dir / "ckpt")
                atomic_torch_save({"step": done, "ema": ema.state_dict(), "meta": meta},
                                  out_dir / "eval_ckpts" / ckpt.ckpt_name(done))
            if done % tp.ckpt_every == 0 or done == tp.steps:
                save(done)
            if progress is not None:
                progress(done, tp.steps)
            if stop["signal"] is not None:
                if done % tp.ckpt_every and done != tp.steps:
                    save(done)
                raise Preempted(f"{signal.Signals(stop['signal']).name} at step {done}: checkpoint written to "
                                f"{out_dir / 'ckpt'}; re-run the same command to resume")
    finally:
        if log_f is not None:
            with contextlib.suppress(OSError):  # a full disk: the error that stopped the run is the one to show
                log_f.close()
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)

    if dist_info.is_main:
        atomic_torch_save({"step": tp.steps, "ema": ema.state_dict(), "meta": meta}, out_dir / "final.pt")
    return TrainResult(step=tp.steps, resumed_from=resumed_from, log=log_lines)
