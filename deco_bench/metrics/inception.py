"""ADM's Inception features from torch-fidelity's PyTorch port of the TF 2015-12-05 graph, all in one pass.

Where ADM's tensors live in the port (see /work/shared/ECOSYSTEM.md "Evaluation"):
- `pool_3:0` -> the 2048-d pooled feature ("2048"), for FID, precision/recall and KID;
- softmax input for IS -> pool_3 times the logits matrix without its bias ("logits_unbiased");
- `mixed_6/conv:0` -> the ReLU output of Mixed_6d.branch1x1 (17x17x192; torch-fidelity's converter maps
  mixed_6/conv/* there); ADM keeps channels [:7] and flattens in NHWC order (2,023 values), so we do the same
  (the order matters when scoring against ADM's precomputed mu_s/sigma_s).
The network runs in float64 (torch-fidelity's feature_extractor_internal_dtype) so features do not depend on the
batch size; outputs are cast to float32 like torch-fidelity's, statistics are then accumulated in float64.
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
    """Callable: uint8 (b, H, W, 3) images -> {'pool': (b, 2048), 'logits': (b, 1008), 'spatial': (b, 2023)}."""

    def __init__(self, weights_path: str | os.PathLike, *, weights_sha256: str | None = None,
                 device: str | torch.device = "cpu", internal_dtype: str = "float64"):
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        weights_path = Path(weights_path)
        # torch-fidelity unpickles with weights_only=False; reading the file with the weights-only loader first
        # guarantees it holds nothing but tensors (and names a corrupt file clearly) before that happens.
        safe_torch_load(weights_path)
        self.net = FeatureExtractorInceptionV3("inception-v3-compat", [POOL_LAYER, LOGITS_LAYER],
                                               feature_extractor_weights_path=str(weights_path),
                                               feature_extractor_internal_dtype=internal_dtype).to(device)
        self.device = torch.device(device)
        self._spatial: torch.Tensor | None = None
        self.net.Mixed_6d.branch1x1.register_forward_hook(self._keep_spatial)
        import torch_fidelity

        self.identity = {
            "extractor": "torch-fidelity InceptionV3 (TF 2015-12-05 port)",
            "weights_sha256": weights_sha256 or sha256_file(weights_path),
            "layers": "pool_3=2048; logits_unbiased; mixed_6/conv=Mixed_6d.branch1x1[:7] NHWC",
            "internal_dtype": internal_dtype,
            "torch_fidelity": torch_fidelity.__version__,
        }

    def _keep_spatial(self, module, inputs, output: torch.Tensor) -> None:
        # (b, 192, 17, 17) -> first 7 channels -> NHWC -> (b, 17 * 17 * 7), as ADM's TF graph lays it out
        self._spatial = output[:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1).reshape(output.shape[0], -1)

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(self.device)  # uint8 NCHW
        pool, logits = self.net(x)
        spatial = self._spatial.to(torch.float32)
        self._spatial = None
        return {"pool": pool.cpu().numpy(), "logits": logits.cpu().numpy(), "spatial": spatial.cpu().numpy()}
