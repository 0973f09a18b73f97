"""DeCo: a DiT on 16x16 patch tokens (low frequencies) + an attention-free pixel decoder (high frequencies).

Same computation as the official `dit_c2i_DeCo.PixNerDiT` (docs/paper.md §5.4, paper §3.2-3.3, Eq. 8-9). This file
is laid out line for line like dit.py: `diff dit.py deco.py` shows only the pixel decoder below, which replaces the
baseline's AdaLN final layer, and how the DiT output conditions it (s = SiLU(t_emb + DiT tokens)).

Decoder tokens. The official decoder has one token per pixel (decoder patch size q = 1). For the ablation of paper
Table 4(c) a decoder token may cover q x q pixels: inside each p x p DiT patch there are G x G decoder tokens
(G = p / q); a token's input is its 3*q*q pixel values plus the DCT position features of its place in the G x G
grid, and it outputs 3*q*q values. With q = 1 this is exactly the official decoder. The decoder width is
`decoder_hidden` as given; presets.matched_decoder_hidden picks a width that keeps the parameter count close to
the q = 1 decoder (Table 4(c) "similar parameter counts").

Interaction (Table 4(d)). 'adaln' (official): each decoder block is modulated (shift, scale, gate) by the per-pixel
condition. 'add' (UNet-like): the same cond_embed Linear maps each DiT token to G*G per-pixel features (a learned
stride-p upsampling, like a pixel-shuffle / stride-p transposed convolution), which are ADDED to the decoder's
hidden state once after input_proj; the blocks are then plain pre-LN residual MLPs without AdaLN.

Shape letters: B batch, L patch tokens (= H/p * W/p), C hidden size, D head dim, p patch size; in the decoder
G = p/q decoder tokens per patch side, d decoder width, F max_freqs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import NORM_EPS, DiTBlock, LabelEmbedder, PatchTransformer, TimestepEmbedder, modulate

# ---------------------------------------------------------------------------------------------------------------
# Output head: the pixel decoder
# ---------------------------------------------------------------------------------------------------------------


def to_decoder_tokens(x: torch.Tensor, p: int, q: int) -> torch.Tensor:
    """(B, c, H, W) -> (B*L, G*G, c*q*q): DiT patches row-major, then decoder tokens row-major inside each patch,
    features ordered (channel, row, col). For q = 1 this is the official unfold -> (B*L, p*p, 3) layout."""
    b, c, h, w = x.shape
    g = p // q
    x = x.reshape(b, c, h // p, g, q, w // p, g, q)  # B c Hp G q Wp G q
    return x.permute(0, 2, 5, 3, 6, 1, 4, 7).reshape(-1, g * g, c * q * q)  # B*L G*G c*q*q


def from_decoder_tokens(z: torch.Tensor, p: int, q: int, c: int, h: int, w: int) -> torch.Tensor:
    """Inverse of `to_decoder_tokens`: (B*L, G*G, c*q*q) -> (B, c, H, W)."""
    g = p // q
    z = z.reshape(-1, h // p, w // p, g, g, c, q, q)  # B Hp Wp G G c q q
    return z.permute(0, 5, 1, 3, 6, 2, 4, 7).reshape(-1, c, h, w)  # B c H W


def dct_position_features(grid: int, max_freqs: int) -> torch.Tensor:
    """DCT-basis features of the positions of a grid x grid token layout: (grid*grid, max_freqs**2), float32.

    feature[n, i*F + j] = cos(pi f_i x_n) cos(pi f_j y_n) / (1 + f_i f_j), positions x, y = linspace(0, 1, grid),
    frequencies f = linspace(0, F, F) (not integers; parity with official NerfEmbedder, max_freqs = 8).
    """
    pos = torch.linspace(0, 1, grid)
    ys, xs = torch.meshgrid(pos, pos, indexing="ij")  # G G
    xs, ys = xs.reshape(-1, 1, 1), ys.reshape(-1, 1, 1)  # G*G 1 1
    f = torch.linspace(0, max_freqs, max_freqs)
    fx, fy = f[None, :, None], f[None, None, :]  # 1 F 1, 1 1 F
    basis = torch.cos(xs * fx * torch.pi) * torch.cos(ys * fy * torch.pi) * (1 + fx * fy) ** -1  # G*G F F
    return basis.reshape(grid * grid, max_freqs * max_freqs)  # G*G F*F


class DecoderBlock(nn.Module):
    """h + gate * MLP(LN(h) * (1 + scale) + shift), (shift, scale, gate) = Linear(SiLU(cond)) (paper Eq. 9).

    With adaln=False ('add' interaction) there is no modulation: h + MLP(LN(h)).
    """

    def __init__(self, dim: int, adaln: bool = True):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=NORM_EPS)
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)
        self.modulation = nn.Linear(dim, 3 * dim) if adaln else None

    def forward(self, h: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if self.modulation is None:
            return h + self.fc2(F.silu(self.fc1(self.norm(h))))  # N G*G d
        shift, scale, gate = self.modulation(F.silu(cond)).chunk(3, dim=-1)  # N G*G d each
        return h + gate * self.fc2(F.silu(self.fc1(modulate(self.norm(h), shift, scale))))  # N G*G d


class PixelDecoder(nn.Module):
    """Attention-free decoder: per-token MLP on (pixels, DCT position) conditioned on its DiT token.

    Its weights are initialised by DeCo.initialize_weights (one initialize_weights per model, as official).
    """

    def __init__(self, cfg):
        super().__init__()
        p, q, d, c_in = cfg.patch_size, cfg.decoder_patch_size, cfg.decoder_hidden, cfg.in_channels
        self.patch_size, self.token_size, self.in_channels, self.max_freqs = p, q, c_in, cfg.max_freqs
        self.grid = p // q
        self.interaction = cfg.interaction
        self.pixel_embed = nn.Linear(c_in * q * q + cfg.max_freqs ** 2, d)
        self.input_proj = nn.Linear(d, d)
        self.cond_embed = nn.Linear(cfg.hidden_size, self.grid ** 2 * d)
        self.blocks = nn.ModuleList(DecoderBlock(d, adaln=cfg.interaction == "adaln")
                                    for _ in range(cfg.decoder_depth))
        self.final_norm = nn.LayerNorm(d, elementwise_affine=False, eps=NORM_EPS)
        self.final_linear = nn.Linear(d, c_in * q * q)
        self._pos_cache: dict[tuple, torch.Tensor] = {}

    def position_features(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (str(device), dtype)
        if key not in self._pos_cache:
            self._pos_cache[key] = dct_position_features(self.grid, self.max_freqs).to(device=device, dtype=dtype)
        return self._pos_cache[key]

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) noisy pixels, s (B, L, C) DiT conditions -> v (B, 3, H, W)."""
        b, c_in, h, w = x.shape
        p, q = self.patch_size, self.token_size
        pixels = to_decoder_tokens(x, p, q)  # B*L G*G 3*q*q
        pos = self.position_features(x.device, x.dtype).expand(pixels.shape[0], -1, -1)  # B*L G*G F*F
        z = self.input_proj(self.pixel_embed(torch.cat([pixels, pos], dim=-1)))  # B*L G*G d
        cond = self.cond_embed(s.reshape(-1, s.shape[-1])).reshape(z.shape)  # B*L G*G d
        if self.interaction == "add":
            z = z + cond  # B*L G*G d (UNet-like: upsampled DiT features added once)
        for block in self.blocks:
            z = block(z, cond)  # B*L G*G d
        out = self.final_linear(self.final_norm(z))  # B*L G*G 3*q*q
        return from_decoder_tokens(out, p, q, c_in, h, w)  # B 3 H W


# ---------------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------------


class DeCo(PatchTransformer, nn.Module):
    """v = PixelDecoder(x_t, s), s = SiLU(t_emb + DiT(patchify(x_t), c)), c = SiLU(t_emb + y_emb) (PixNerDiT)."""

    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.hidden_size = cfg.hidden_size
        self.num_heads = cfg.num_heads
        self.num_classes = cfg.num_classes
        self.patch_size = cfg.patch_size
        self.in_channels = cfg.in_channels
        p, c = cfg.patch_size, cfg.hidden_size
        # Modules are created in this order; with initialize_weights below it fixes the weights under a seed.
        self.patch_embed = nn.Linear(cfg.in_channels * p * p, c)
        self.t_embedder = TimestepEmbedder(c)
        self.y_embedder = LabelEmbedder(cfg.num_classes, c)
        self.blocks = nn.ModuleList(DiTBlock(c, cfg.num_heads) for _ in range(cfg.depth))
        self.decoder = PixelDecoder(cfg)
        self._rope_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Parity with the official initialize_weights (same calls in the same order)."""
        if self.patch_embed.weight.is_meta:  # meta tensors hold no values (used to count parameters / FLOPs)
            return
        self.init_trunk_weights()
        # Pixel decoder (official SimpleMLPAdaLN): xavier + zero bias for its Linears, zero AdaLN and zero output,
        # so the model predicts v = 0 at initialisation. pixel_embed (official NerfEmbedder, outside that module)
        # keeps PyTorch's default init.
        dec = self.decoder
        for layer in (dec.input_proj, dec.cond_embed, dec.final_linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        for block in dec.blocks:
            for layer in (block.fc1, block.fc2):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
            if block.modulation is not None:
                nn.init.zeros_(block.modulation.weight)
                nn.init.zeros_(block.modulation.bias)
        nn.init.zeros_(dec.final_linear.weight)
        nn.init.zeros_(dec.final_linear.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, return_features: bool = False):
        """x (B, 3, H, W) in [-1, 1], t (B,) in [0, 1] with 1 = data, y (B,) long (num_classes = null) -> v.

        With return_features, returns (v, features) like the official forward_sx: features is the decoder's
        condition s as a map (B, C, H/p, W/p).
        """
        h, w, rope, t_emb, c, tokens = self.embed(x, t, y)  # tokens B L C; c, t_emb B 1 C
        for block in self.blocks:
            tokens = block(tokens, c, rope)  # B L C
        s = F.silu(t_emb + tokens)  # B L C
        v = self.decoder(x, s)  # B 3 H W
        if return_features:
            return v, self.tokens_to_map(s, h, w)  # B 3 H W, B C H/p W/p
        return v  # B 3 H W

