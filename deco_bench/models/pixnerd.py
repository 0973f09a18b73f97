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
from .layers import DiTBlock, LabelEmbedder, RMSNorm, TimestepEmbedder, check_inputs, patchify, rope_2d_angles

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


class PixNerd(nn.Module):
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
        # xavier patch embedding, N(0, 0.02) label table and t-MLP weights; the DiT blocks, the weight generators
        # and pixel_embed keep PyTorch's default Linear init (the official code does not re-init them).
        nn.init.xavier_uniform_(self.patch_embed.weight)
        nn.init.zeros_(self.patch_embed.bias)
        nn.init.normal_(self.y_embedder.table.weight, std=0.02)
        nn.init.normal_(self.t_embedder.fc1.weight, std=0.02)
        nn.init.normal_(self.t_embedder.fc2.weight, std=0.02)
        # Zero output layer, so the model predicts 0 at initialisation.
        nn.init.zeros_(self.final_linear.weight)
        nn.init.zeros_(self.final_linear.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, return_features: bool = False):
        """x (B, 3, H, W) in [-1, 1], t (B,) in [0, 1] with 1 = data, y (B,) long (num_classes = null) -> v
        (or x with prediction 'x').

        With return_features, returns (out, features): features is the fields' condition s as a map
        (B, C, H/p, W/p), the tensor DeCo's forward_features returns for its decoder.
        """
        check_inputs(x, t, y, self.in_channels, self.patch_size)
        _, c_in, h, w = x.shape  # B 3 H W
        p = self.patch_size
        rope = self.rope(h // p, w // p, x.device)  # cos, sin: L D/2 each
        t_emb = self.t_embedder(t.reshape(-1))[:, None]  # B 1 C
        c = F.silu(t_emb + self.y_embedder(y.reshape(-1))[:, None])  # B 1 C
        tokens = self.patch_embed(patchify(x, p))  # B L C
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

    def forward_features(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor):
        """(out (B, 3, H, W), features (B, C, H/p, W/p)): `forward` with return_features=True."""
        return self.forward(x, t, y, return_features=True)

    # -----------------------------------------------------------------------------------------------------------
    # Helpers of forward
    # -----------------------------------------------------------------------------------------------------------

    def rope(self, h_tokens: int, w_tokens: int, device: torch.device):
        """(cos, sin) of the 2-D RoPE angles for an h_tokens x w_tokens grid, (L, D/2) each, cached."""
        key = (h_tokens, w_tokens, str(device))
        if key not in self._rope_cache:
            angles = rope_2d_angles(self.hidden_size // self.num_heads, h_tokens, w_tokens)  # L D/2
            self._rope_cache[key] = (angles.cos().to(device), angles.sin().to(device))
        return self._rope_cache[key]

    def position_features(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """DCT position features of the p x p pixels of a patch (P, F*F), cached per device and dtype."""
        key = (str(device), dtype)
        if key not in self._pos_cache:
            feats = dct_position_features(self.patch_size, self.max_freqs)  # P F*F
            self._pos_cache[key] = feats.to(device=device, dtype=dtype)
        return self._pos_cache[key]

    def tokens_to_map(self, tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(B, L, C) -> (B, C, H/p, W/p) for an H x W image."""
        p = self.patch_size
        return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, h // p, w // p)
