"""Evaluation metrics: ADM protocol (FID, sFID, IS, precision/recall, KID), the embedded feature space, optional
FD-DINOv2 (dinov2.py) and the clean-fid cross-check (cleanfid_backend.py, imported on demand)."""

from deco_bench.metrics.api import (
    EMBED_NAMES,
    FD_DINOV2,
    FD_EMBED,
    FID,
    INCEPTION_NAMES,
    IS,
    IS_EMBED,
    KID,
    KID_EMBED,
    PRECISION,
    PRECISION_EMBED,
    RECALL,
    RECALL_EMBED,
    SFID,
    Reference,
    aggregate_seeds,
    compare,
    compute_all,
    compute_metrics,
    evaluate_samples,
)
from deco_bench.metrics.embed_net import load_feature_net, save_feature_net, train_feature_net
from deco_bench.metrics.frechet import FeatureStats, frechet_distance

__all__ = [
    "EMBED_NAMES", "FD_DINOV2", "FD_EMBED", "FID", "INCEPTION_NAMES", "IS", "IS_EMBED", "KID", "KID_EMBED", "PRECISION",
    "PRECISION_EMBED", "RECALL", "RECALL_EMBED", "SFID", "FeatureStats", "Reference", "aggregate_seeds", "compare",
    "compute_all", "compute_metrics", "evaluate_samples", "frechet_distance", "load_feature_net",
    "save_feature_net", "train_feature_net",
]
