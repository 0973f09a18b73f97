"""PixNerd: a pixel DiT whose last blocks are per-patch neural fields (the "PixNerd" row of paper Table 1).

Same computation as the official `dit_c2i_pixnerd.PixNerDiT` built from `configs_c2i/Baseline_PixNerd.yaml`
(docs/paper.md §2.1, §5.2). Laid out like dit.py and deco.py: `diff deco.py pixnerd.py` shows how the two
pixel heads differ. DeCo's decoder is a small MLP shared by every pixel and *modulated* (AdaLN) by its DiT token;
PixNerd's head instead *generates the weights* of a two-layer MLP for each patch from its DiT token, and runs
that MLP (the patch's neural field) on the patch's pixels with their DCT position features.

As in the official class, `blocks` holds the DiT blocks followed by the neural-field blocks, so block i has the
official index i (the REPA hook on blocks[align_layer - 1] sees a DiT block as long as align_layer <= depth).

Shape letters: B batch, L patch tokens (= H/p * W/p), C hidden size, D head dim, p patch size; in the field
P = p*p pixels per patch, d field width (decoder_hidden), r field_mlp_ratio, F max_freqs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .deco import dct_position_features, from_decoder_tokens, to_decoder_tokens
from .layers import DiTBlock, LabelEmbedder, PatchTransformer, RMSNorm, TimestepEmbedder

# ---------------------------------------------------------------------------------------------------------------
# Output head: per-patch neural fields
# ---------------------------------------------------------------------------------------------------------------


class NeuralFieldBlock(nn.Module):
    """h + W2 SiLU(W1 RMSNorm(h)), with W1 (d x r*d) and W2 (r*d x d) generated from the patch's DiT token s and
    column-normalised (each output unit's weight vector has unit L2 norm), as the official NerfBlock."""

    def __init__(self, hidden_size: int, field_hidden: int, mlp_ratio: int):
        super().__init__()
        self.field_hidden, self.mlp_ratio = field_hidden, mlp_ratio
        self.param_generator = nn.Linear(hidden_size, 2 * field_hidden * field_hidden * mlp_ratio)
        self.norm = RMSNorm(field_hidden)

    def forward(self, h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        n, d, r = h.shape[0], self.field_hidden, self.mlp_ratio
        w1, w2 = self.param_generator(s).chunk(2, dim=-1)  # N d*r*d each
        w1 = F.normalize(w1.view(n, d, r * d), dim=-2)  # N d r*d
        w2 = F.normalize(w2.view(n, r * d, d), dim=-2)  # N r*d d
        return h + torch.bmm(F.silu(torch.bmm(self.norm(h), w1)), w2)  # N P d


# ---------------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------------


class PixNerd(PatchTransformer, nn.Module):
    """v = fields(x_t pixels + DCT positions; weights from s), s = SiLU(t_emb + DiT(patchify(x_t), c))."""

    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.prediction = cfg.prediction  # what forward returns: 'v', or 'x' (JiT; diffusion.path converts it)
        self.hidden_size = cfg.hidden_size
        self.num_heads = cfg.num_heads
        self.num_classes = cfg.num_classes
        self.patch_size = cfg.patch_size
        self.in_channels = cfg.in_channels
        self.depth = cfg.depth
        self.max_freqs = cfg.max_freqs
        p, c, d = cfg.patch_size, cfg.hidden_size, cfg.decoder_hidden
        # Created in the official order, so that under one seed the initial weights are the official ones.
        self.pixel_embed = nn.Linear(cfg.in_channels + cfg.max_freqs ** 2, d)
        self.patch_embed = nn.Linear(cfg.in_channels * p * p, c)
        self.t_embedder = TimestepEmbedder(c)
        self.y_embedder = LabelEmbedder(cfg.num_classes, c)
        self.final_norm = RMSNorm(d)
        self.final_linear = nn.Linear(d, cfg.in_channels)
        self.blocks = nn.ModuleList(DiTBlock(c, cfg.num_heads) for _ in range(cfg.depth))
        self.blocks.extend(NeuralFieldBlock(c, d, cfg.field_mlp_ratio) for _ in range(cfg.decoder_depth))
        self._rope_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self._pos_cache: dict[tuple, torch.Tensor] = {}
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Parity with the official initialize_weights (same calls in the same order)."""
        if self.patch_embed.weight.is_meta:  # meta tensors hold no values (used to count parameters / FLOPs)
            return
        # the weight generators and pixel_embed keep PyTorch's default Linear init, as the DiT blocks do
        self.init_trunk_weights()
        # Zero output layer, so the model predicts 0 at initialisation.
        nn.init.zeros_(self.final_linear.weight)
        nn.init.zeros_(self.final_linear.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, return_features: bool = False):
        """x (B, 3, H, W) in [-1, 1], t (B,) in [0, 1] with 1 = data, y (B,) long (num_classes = null) -> v
        (or x with prediction 'x').

        With return_features, returns (out, features): features is the fields' condition s as a map
        (B, C, H/p, W/p), the tensor DeCo's forward_features returns for its decoder.
        """
        h, w, rope, t_emb, c, tokens = self.embed(x, t, y)  # tokens B L C; c, t_emb B 1 C
        p, c_in = self.patch_size, x.shape[1]
        for block in self.blocks[:self.depth]:
            tokens = block(tokens, c, rope)  # B L C
        s = F.silu(t_emb + tokens)  # B L C
        pixels = to_decoder_tokens(x, p, 1)  # B*L P 3
        pos = self.position_features(x.device, x.dtype).expand(pixels.shape[0], -1, -1)  # B*L P F*F
        z = self.pixel_embed(torch.cat([pixels, pos], dim=-1))  # B*L P d
        s_rows = s.reshape(-1, self.hidden_size)  # B*L C
        for block in self.blocks[self.depth:]:
            z = block(z, s_rows)  # B*L P d
        out = self.final_linear(self.final_norm(z))  # B*L P 3
        v = from_decoder_tokens(out, p, 1, c_in, h, w)  # B 3 H W
        if return_features:
            return v, self.tokens_to_map(s, h, w)  # B 3 H W, B C H/p W/p
        return v  # B 3 H W

    def position_features(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """DCT position features of the p x p pixels of a patch (P, F*F), cached per device and dtype."""
        key = (str(device), dtype)
        if key not in self._pos_cache:
            feats = dct_position_features(self.patch_size, self.max_freqs)  # P F*F
            self._pos_cache[key] = feats.to(device=device, dtype=dtype)
        return self._pos_cache[key]
