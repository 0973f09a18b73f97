"""A randomly initialised Inception in torch-fidelity's state-dict format, so tests run offline.

Initialisation is chosen so activations neither vanish nor explode through the 90-odd layers (He-normal convs,
BatchNorm with random affine and running statistics) and the logits are far from uniform (IS well above 1).
"""

from __future__ import annotations

import torch


def make_random_inception_state(seed: int = 0) -> dict[str, torch.Tensor]:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _Unloaded(FeatureExtractorInceptionV3):  # skip loading: keep the freshly built layers
        def load_state_dict(self, state_dict, strict=True, assign=False):
            return None

    import tempfile
    import os

    with tempfile.TemporaryDirectory() as d:
        empty = os.path.join(d, "empty.pth")
        torch.save({}, empty)
        net = _Unloaded("inception-v3-compat", ["2048"], feature_extractor_weights_path=empty)
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, t in torch.nn.Module.state_dict(net).items():
        t = t.detach().clone().to(torch.float32) if t.is_floating_point() else t.detach().clone()
        if name.endswith("conv.weight"):
            fan_in = t[0].numel()
            t = torch.randn(t.shape, generator=g) * (2.0 / fan_in) ** 0.5
        elif name.endswith("bn.weight"):
            t = 1.0 + 0.1 * torch.randn(t.shape, generator=g)
        elif name.endswith("bn.bias"):
            t = 0.1 * torch.randn(t.shape, generator=g)
        elif name.endswith("bn.running_mean"):
            t = 0.1 * torch.randn(t.shape, generator=g)
        elif name.endswith("bn.running_var"):
            t = 1.0 + 0.1 * torch.rand(t.shape, generator=g)
        elif name == "fc.weight":
            t = torch.randn(t.shape, generator=g)
        elif name == "fc.bias":
            t = 0.1 * torch.randn(t.shape, generator=g)
        state[name] = t.contiguous()
    # The pool features of all images share a large common part m; projecting the logits rows orthogonal to m
    # (estimated on a few random images) makes the logits depend on what differs between images, and a large scale
    # makes them confident: IS well above 1, so a wrong IS cannot hide near 1.
    net.load_state_dict = torch.nn.Module.load_state_dict.__get__(net)
    net.load_state_dict(state)
    net.eval()
    probe = torch.randint(0, 256, (4, 3, 8, 8), generator=g, dtype=torch.uint8)
    with torch.no_grad():
        pool = net(probe)[0].double()
    m = pool.mean(0)
    w = state["fc.weight"].double()
    w = w - (w @ m)[:, None] * m[None, :] / (m @ m)
    state["fc.weight"] = (w * 3.0 / (pool - m).std() / w.shape[1] ** 0.5).float().contiguous()
    return state
