"""Run by test_distributed.py, directly (one process) or under torchrun (several): train tiny DeCo, save weights."""

import sys
from pathlib import Path

import numpy as np
import torch

from deco_bench.config import ModelEntry, TrainParams
from deco_bench.data import ArrayDataset
from deco_bench.diffusion.encoders import SmallEncoder
from deco_bench.models import build_model, get_preset
from deco_bench.training.distributed import cleanup, init_distributed
from deco_bench.training.loop import train

out = Path(sys.argv[1])
grad_accum = int(sys.argv[2])
torch.set_num_threads(1)
rng = np.random.default_rng(0)
images = rng.integers(0, 256, size=(32, 16, 16, 3), dtype=np.uint8)
labels = (np.arange(32) % 4).astype(np.int64)
info = init_distributed("cpu")
torch.manual_seed(0)
cfg = get_preset("deco-tiny", num_classes=4)
net = build_model(cfg)
tp = TrainParams(steps=3, global_batch=8, grad_accum=grad_accum, lr=1e-3, ema_decay=0.9, repa_align_layer=1,
                 ckpt_every=3, log_every=1)
train(net, ArrayDataset(images, labels), tp=tp, entry=ModelEntry(preset="deco-tiny"), seed=0, out_dir=out,
      dist_info=info, encoder=SmallEncoder(patch_size=4, dim=16, seed=0), null_label=4,
      meta={"fingerprint": "ddp", "model_config": {}})
if info.is_main:
    torch.save(net.state_dict(), out / "weights.pt")
cleanup()
