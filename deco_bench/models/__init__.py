"""Denoisers: the baseline pixel DiT (dit.py) and DeCo (deco.py), built from presets (presets.py)."""

from .deco import DeCo, PixelDecoder
from .dit import PixelDiT
from .presets import (
                      PRESETS,
                      ModelConfig,
                      build_model,
                      count_parameters,
                      decoder_parameters,
                      get_preset,
                      matched_decoder_hidden,
                      model_flops_per_image,
)

__all__ = ["DeCo", "PixelDecoder", "PixelDiT", "PRESETS", "ModelConfig", "build_model", "count_parameters",
           "decoder_parameters", "get_preset", "matched_decoder_hidden", "model_flops_per_image"]
