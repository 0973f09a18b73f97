"""Blocks shared by the baseline pixel DiT (dit.py) and DeCo (deco.py); each of those files defines its whole model.

Everything here matches what the official code computes (docs/paper.md §5.1 "Network pieces"); the tests compare
against golden outputs of the official classes. Names are our own; official.py holds the name mapping.

Shape letters: B batch, L patch tokens (= H/p * W/p), C hidden size, n heads, D head dim, p patch size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Timesteps live in [0, 1] (1 = data, docs/paper.md §5.1); the official embedder uses max_period=10, not DiT's 10000.
TIME_MAX_PERIOD = 10.0
TIME_FREQ_DIM = 256
# 2-D RoPE: token positions run from 0 to ROPE_SPAN on each axis whatever the resolution (docs/paper.md §5.1).
ROPE_SPAN = 16.0
ROPE_THETA = 10000.0
NORM_EPS = 1e-6


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """AdaLN: x * (1 + scale) + shift (DiT; paper Eq. 9)."""
    return x * (1 + scale) + shift


# ---------------------------------------------------------------------------------------------------------------
# Patches
# ---------------------------------------------------------------------------------------------------------------

def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, c, H, W) -> (B, L, c*p*p), tokens row-major, features ordered (channel, row, col) like F.unfold."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p)  # B c Hp p Wp p
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // p) * (w // p), c * p * p)  # B L c*p*p


def unpatchify(tokens: torch.Tensor, p: int, c: int, h: int, w: int) -> torch.Tensor:
    """Inverse of `patchify` (same layout as F.fold): (B, L, c*p*p) -> (B, c, H, W)."""
    b = tokens.shape[0]
    x = tokens.reshape(b, h // p, w // p, c, p, p)  # B Hp Wp c p p
    return x.permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)  # B c H W


def check_inputs(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, in_channels: int, p: int) -> None:
    """ValueError unless x is (B, in_channels, H, W) with H, W multiples of p and t, y have one entry per image."""
    if x.ndim != 4 or x.shape[1] != in_channels or x.shape[2] % p or x.shape[3] % p:
        raise ValueError(f"x must be (B, {in_channels}, H, W) with H, W multiples of the patch size {p}; "
                         f"got {tuple(x.shape)}")
    if t.reshape(-1).shape[0] != x.shape[0] or y.reshape(-1).shape[0] != x.shape[0]:
        raise ValueError(f"t and y need one entry per image: x {tuple(x.shape)}, t {tuple(t.shape)}, "
                         f"y {tuple(y.shape)}")


# ---------------------------------------------------------------------------------------------------------------
# Normalisation, embedders, RoPE
# ---------------------------------------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    """RMSNorm computed in float32, cast back, then scaled (parity with the official LLaMA-style norm)."""

    def __init__(self, dim: int, eps: float = NORM_EPS):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def timestep_frequencies(t: torch.Tensor, dim: int = TIME_FREQ_DIM, max_period: float = TIME_MAX_PERIOD):
    """Sinusoidal features [cos | sin] of t in [0, 1]: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]  # B half
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)  # B 2*half
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class TimestepEmbedder(nn.Module):
    """t (B,) -> sinusoidal features -> Linear, SiLU, Linear -> (B, C)."""

    def __init__(self, hidden_size: int, freq_dim: int = TIME_FREQ_DIM):
        super().__init__()
        self.freq_dim = freq_dim
        self.fc1 = nn.Linear(freq_dim, hidden_size)
        self.fc2 = nn.Linear(hidden_size, hidden_size)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        h = timestep_frequencies(t, self.freq_dim).to(self.fc1.weight.dtype)  # B 256
        return self.fc2(F.silu(self.fc1(h)))  # B C


class LabelEmbedder(nn.Module):
    """Class label -> vector. The table has num_classes + 1 rows; row num_classes is the CFG null label."""

    def __init__(self, num_classes: int, hidden_size: int):
        super().__init__()
        self.null_class = num_classes
        self.table = nn.Embedding(num_classes + 1, hidden_size)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.table(y)  # B C


def rope_2d_angles(head_dim: int, h_tokens: int, w_tokens: int) -> torch.Tensor:
    """Rotation angles (L, head_dim/2) of 2-D RoPE, float32.

    Positions are linspace(0, 16, n) on each axis at every resolution (parity with official code). Rotation pairs
    alternate x, y: pair 2k turns by x * f_k and pair 2k+1 by y * f_k, with f_k = theta^(-4k/head_dim).
    """
    if head_dim % 4:
        raise ValueError(f"2-D RoPE needs a head dim divisible by 4, got {head_dim}")
    ys, xs = torch.meshgrid(torch.linspace(0, ROPE_SPAN, h_tokens), torch.linspace(0, ROPE_SPAN, w_tokens),
                            indexing="ij")  # Ht Wt
    freqs = 1.0 / ROPE_THETA ** (torch.arange(0, head_dim, 4)[: head_dim // 4].float() / head_dim)  # D/4
    x_angles = torch.outer(xs.reshape(-1), freqs)  # L D/4
    y_angles = torch.outer(ys.reshape(-1), freqs)  # L D/4
    return torch.stack([x_angles, y_angles], dim=-1).reshape(h_tokens * w_tokens, head_dim // 2)  # L D/2


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent feature pairs of x (B, L, n, D) by angles given as cos/sin (L, D/2); float32 inside."""
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)  # B L n D/2 2
    a, b = pairs[..., 0], pairs[..., 1]
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    out = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1)  # B L n D/2 2
    return out.flatten(-2).type_as(x)  # B L n D


# ---------------------------------------------------------------------------------------------------------------
# Transformer block
# ---------------------------------------------------------------------------------------------------------------

class Attention(nn.Module):
    """Multi-head self-attention with qk-RMSNorm and 2-D RoPE (no qkv bias, biased output projection)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"hidden size {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_norm = RMSNorm(self.head_dim)
        self.k_norm = RMSNorm(self.head_dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        b, n_tok, dim = x.shape
        q, k, v = self.qkv(x).reshape(b, n_tok, 3, self.num_heads, self.head_dim).unbind(2)  # B L n D each
        q = apply_rope(self.q_norm(q), *rope)  # B L n D
        k = apply_rope(self.k_norm(k), *rope)  # B L n D
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # B n L D
        out = F.scaled_dot_product_attention(q, k, v)  # B n L D
        return self.proj(out.transpose(1, 2).reshape(b, n_tok, dim))  # B L C


class SwiGLU(nn.Module):
    """w_down(SiLU(w_gate x) * w_up x), hidden = int(2 * 4C / 3) (parity with official FeedForward)."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0):
        super().__init__()
        hidden = int(2 * int(dim * mlp_ratio) / 3)
        self.w_gate = nn.Linear(dim, hidden, bias=False)
        self.w_up = nn.Linear(dim, hidden, bias=False)
        self.w_down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))


class DiTBlock(nn.Module):
    """Pre-norm block with 6 AdaLN modulations (shift/scale/gate for attention and for the MLP).

    The condition c is already SiLU(t_emb + y_emb), so the modulation is a single Linear (as official).
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.norm1 = RMSNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = RMSNorm(dim)
        self.mlp = SwiGLU(dim)
        self.modulation = nn.Linear(dim, 6 * dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor, rope) -> torch.Tensor:
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.modulation(c).chunk(6, dim=-1)  # B 1 C each
        x = x + gate_a * self.attn(modulate(self.norm1(x), shift_a, scale_a), rope)  # B L C
        return x + gate_m * self.mlp(modulate(self.norm2(x), shift_m, scale_m))  # B L C


class PatchTransformer:
    """What the three patch transformers (baseline DiT, DeCo, PixNerd) share around their DiT blocks: the condition
    and patch tokens of an input, the cached 2-D RoPE, the token map of features and `forward_features`.

    A subclass (also an nn.Module) sets hidden_size, num_heads, patch_size, in_channels, an empty dict _rope_cache,
    and the modules patch_embed, t_embedder and y_embedder.
    """

    def init_trunk_weights(self) -> None:
        """The official initialisation of the embedders, called first by each model's initialize_weights: xavier
        patch embedding with zero bias, N(0, 0.02) label table and t-MLP weights. The DiT blocks keep PyTorch's
        default Linear init (the official code does not re-init them)."""
        nn.init.xavier_uniform_(self.patch_embed.weight)
        nn.init.zeros_(self.patch_embed.bias)
        nn.init.normal_(self.y_embedder.table.weight, std=0.02)
        nn.init.normal_(self.t_embedder.fc1.weight, std=0.02)
        nn.init.normal_(self.t_embedder.fc2.weight, std=0.02)

    def embed(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor):
        """Checked inputs -> (h, w, rope, t_emb (B, 1, C), c = SiLU(t_emb + y_emb) (B, 1, C), tokens (B, L, C))."""
        check_inputs(x, t, y, self.in_channels, self.patch_size)
        _, _, h, w = x.shape  # B 3 H W
        p = self.patch_size
        rope = self.rope(h // p, w // p, x.device)  # cos, sin: L D/2 each
        t_emb = self.t_embedder(t.reshape(-1))[:, None]  # B 1 C
        c = F.silu(t_emb + self.y_embedder(y.reshape(-1))[:, None])  # B 1 C
        return h, w, rope, t_emb, c, self.patch_embed(patchify(x, p))

    def forward_features(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor):
        """(output (B, 3, H, W), features (B, C, H/p, W/p)): `forward` with return_features=True."""
        return self.forward(x, t, y, return_features=True)

    def rope(self, h_tokens: int, w_tokens: int, device: torch.device):
        """(cos, sin) of the 2-D RoPE angles for an h_tokens x w_tokens grid, (L, D/2) each, cached."""
        key = (h_tokens, w_tokens, str(device))
        if key not in self._rope_cache:
            angles = rope_2d_angles(self.hidden_size // self.num_heads, h_tokens, w_tokens)  # L D/2
            self._rope_cache[key] = (angles.cos().to(device), angles.sin().to(device))
        return self._rope_cache[key]

    def tokens_to_map(self, tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(B, L, C) -> (B, C, H/p, W/p) for an H x W image."""
        p = self.patch_size
        return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, h // p, w // p)
