"""ADM's Inception features from torch-fidelity's PyTorch port of the TF 2015-12-05 graph, all in one pass.

Where ADM's tensors live in the port (ADM's evaluator.py, docs/paper.md §6):
- `pool_3:0` -> the 2048-d pooled feature ("2048"), for FID, precision/recall and KID;
- softmax input for IS -> pool_3 times the logits matrix without its bias ("logits_unbiased");
- `mixed_6/conv:0` -> the ReLU output of Mixed_6d.branch1x1 (17x17x192; torch-fidelity's converter maps
  mixed_6/conv/* there); ADM keeps channels [:7] and flattens in NHWC order (2,023 values), so we do the same
  (the order matters when scoring against ADM's precomputed mu_s/sigma_s).
The network runs in float64 and its outputs stay float64, so features do not depend on the batch size (float32
BLAS kernels change with the batch size: logits then differ by ~1e-5 relative). torch-fidelity 0.4.0's own
`feature_extractor_internal_dtype="float64"` silently runs float32 (its helpers.text_to_dtype maps "float64" to
torch.float32), so we set the dtype on the module ourselves.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from deco_bench.io import safe_torch_load, sha256_file

SPATIAL_CHANNELS = 7  # ADM evaluator.py: spatial = mixed_6/conv[..., :7]
POOL_LAYER, LOGITS_LAYER = "2048", "logits_unbiased"


class InceptionFeatures:
    """Callable: uint8 (b, H, W, 3) images -> float64 {'pool': (b, 2048), 'logits': (b, 1008), 'spatial': (b, 2023)}."""

    def __init__(self, weights_path: str | os.PathLike, *, weights_sha256: str | None = None,
                 device: str | torch.device = "cpu", internal_dtype: str = "float64"):
        import torch_fidelity
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        weights_path = Path(weights_path)
        # torch-fidelity unpickles with weights_only=False; reading the file with the weights-only loader first
        # guarantees it holds nothing but tensors (and names a corrupt file clearly) before that happens.
        safe_torch_load(weights_path)
        self.net = FeatureExtractorInceptionV3("inception-v3-compat", [POOL_LAYER],
                                               feature_extractor_weights_path=str(weights_path))
        self.dtype = {"float32": torch.float32, "float64": torch.float64}[internal_dtype]
        self.net.feature_extractor_internal_dtype = self.dtype  # its forward() casts the input to this
        self.net.to(device=device, dtype=self.dtype)
        self.device = torch.device(device)
        self._taps: dict[str, torch.Tensor] = {}
        # forward() returns pool cast to float32; the hooks keep the full-precision tensors
        self.net.AvgPool.register_forward_hook(lambda m, i, out: self._taps.__setitem__("pool", out.flatten(1)))
        self.net.Mixed_6d.branch1x1.register_forward_hook(self._keep_spatial)
        self.identity = {
            "extractor": "torch-fidelity InceptionV3 (TF 2015-12-05 port)",
            "weights_sha256": weights_sha256 or sha256_file(weights_path),
            "layers": "pool_3=2048; logits_unbiased; mixed_6/conv=Mixed_6d.branch1x1[:7] NHWC",
            "internal_dtype": internal_dtype,
            "torch_fidelity": torch_fidelity.__version__,
        }

    def _keep_spatial(self, module, inputs, output: torch.Tensor) -> None:
        # (b, 192, 17, 17) -> first 7 channels -> NHWC -> (b, 17 * 17 * 7), as ADM's TF graph lays it out
        self._taps["spatial"] = output[:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1).reshape(output.shape[0], -1)

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        x = torch.from_numpy(np.array(images, dtype=np.uint8, copy=True)).permute(0, 3, 1, 2).to(self.device)
        self.net(x)  # uint8 NCHW in; resizing to 299 and scaling happen inside, as in the TF graph
        pool, spatial = self._taps.pop("pool"), self._taps.pop("spatial")
        logits = pool @ self.net.fc.weight.T  # torch-fidelity's logits_unbiased: fc without its bias (ADM's IS)
        return {k: v.to(torch.float64).cpu().numpy() for k, v in
                (("pool", pool), ("logits", logits), ("spatial", spatial))}
