"""Flow matching: the path convention, losses (FM, FreqFM, REPA), samplers and REPA target encoders."""

from deco_bench.diffusion.losses import (
                                         LossWeights,
                                         RepaProjector,
                                         deco_loss,
                                         fm_loss,
                                         freq_fm_loss,
                                         jpeg_frequency_weights,
                                         repa_loss,
)
from deco_bench.diffusion.path import drop_labels, interpolate, sample_t, time_shift, velocity
from deco_bench.diffusion.sampler import (
                                         class_balanced_labels,
                                         euler_sample,
                                         heun_sample,
                                         sample_noise,
                                         sample_seed,
                                         sampling_times,
)

__all__ = [
    "LossWeights", "RepaProjector", "deco_loss", "fm_loss", "freq_fm_loss", "jpeg_frequency_weights", "repa_loss",
    "drop_labels", "interpolate", "sample_t", "time_shift", "velocity",
    "class_balanced_labels", "euler_sample", "heun_sample", "sample_noise", "sample_seed", "sampling_times",
]
