"""Datasets: the embedded default (crops of scikit-image's bundled photographs) and ImageNet-style folders.

Both yield the same training triple ``(x in [-1, 1] (3, H, W) float32, label int, raw in [0, 1] (3, H, W))``.
"""

from deco_bench.data.embedded import (
    EMBEDDED_PHOTOS,
    MAX_EMBEDDED_CLASSES,
    ArrayDataset,
    EmbeddedDataset,
    build_embedded_dataset,
)
from deco_bench.data.imagenet import (
    IMAGENET_ROOT_ENV,
    DataError,
    FolderSummary,
    ImageFolderDataset,
    adm_center_crop,
    check_image_folder,
    resolve_imagenet_root,
    uint8_image_to_tensors,
)

__all__ = [
    "EMBEDDED_PHOTOS",
    "IMAGENET_ROOT_ENV",
    "MAX_EMBEDDED_CLASSES",
    "ArrayDataset",
    "DataError",
    "EmbeddedDataset",
    "FolderSummary",
    "ImageFolderDataset",
    "adm_center_crop",
    "build_embedded_dataset",
    "check_image_folder",
    "resolve_imagenet_root",
    "uint8_image_to_tensors",
]
