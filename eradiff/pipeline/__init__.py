"""The erase pipeline: image/mask I/O, windows, DDIM sampling with SRA, blending.

| name                         | what                                                        |
| ---------------------------- | ----------------------------------------------------------- |
| ``erase``                    | erase the masked region of an image array (the Python API)  |
| ``EraseOptions``             | steps, strength, η, seed, dilate, feather, SRA, prompt, …   |
| ``EraseResult``              | the erased array and an ``EraseReport`` (seed, windows, s)  |
| ``ddim_sample``              | the DDIM chain on ``eradiff.core`` (strength, η, RePaint)   |
| ``read_image``/``read_mask`` | files → arrays (EXIF, 16-bit, alpha masks, size checks)     |
| ``write_image``              | atomic write keeping format, EXIF and ICC                   |
"""

from eradiff.pipeline.erase import EraseOptions, EraseReport, EraseResult, erase
from eradiff.pipeline.io import LoadedImage, read_image, read_mask, write_image
from eradiff.pipeline.sampler import ddim_sample

__all__ = [
    "EraseOptions",
    "EraseReport",
    "EraseResult",
    "LoadedImage",
    "ddim_sample",
    "erase",
    "read_image",
    "read_mask",
    "write_image",
]
