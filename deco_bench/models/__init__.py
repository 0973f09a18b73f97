"""Denoisers: the baseline pixel DiT (dit.py), DeCo (deco.py) and PixNerd (pixnerd.py), built from presets."""

from .deco import DeCo, PixelDecoder
from .dit import PixelDiT
from .pixnerd import PixNerd
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

__all__ = ["DeCo", "PixelDecoder", "PixelDiT", "PixNerd", "PRESETS", "ModelConfig", "build_model", "count_parameters",
           "decoder_parameters", "get_preset", "matched_decoder_hidden", "model_flops_per_image"]
