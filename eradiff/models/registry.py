"""The model families, by the name stored with their weights (``eradiff_config["family"]``).

A family is one class: an :class:`~eradiff.models.family.ErasureModel` subclass that knows how
it is built from a checkpoint's config (``from_checkpoint_config``), around an exported UNet
(``around_unet``), prepared for training (``prepare_for_training``), whether it re-imposes the
known region by default (``reimpose_known_default``) and how its conditioning is made
(``condition``). Adding a family is its module plus one line in :data:`FAMILIES`; nothing outside
``eradiff/models/`` tests a family's name.

| family     | class                   | weights                                                  |
| ---------- | ----------------------- | -------------------------------------------------------- |
| ``pixel``  | ``PixelInpaintModel``   | the UNet (safetensors), the config in the metadata       |
| ``latent`` | ``LatentInpaintModel``  | the UNet; VAE and text encoder from a diffusers base     |

The classical fills (:mod:`eradiff.models.classical`, family ``"classical"``) have no weights:
:func:`eradiff.models.loading.load_model` builds them from their method name.
"""

from __future__ import annotations

from eradiff.errors import ModelLoadError
from eradiff.models.family import ErasureModel, LatentInpaintModel, PixelInpaintModel

FAMILIES: dict[str, type[ErasureModel]] = {
    "pixel": PixelInpaintModel,
    "latent": LatentInpaintModel,
}


def family_class(name: object, *, where: str) -> type[ErasureModel]:
    """The class of family ``name``.

    Raises:
        ModelLoadError: an unknown family, naming ``where`` and the known ones.
    """
    if not isinstance(name, str) or name not in FAMILIES:
        known = " or ".join(map(repr, FAMILIES))
        raise ModelLoadError(f"{where}: unknown model family {name!r} (expected {known})")
    return FAMILIES[name]


__all__ = ["FAMILIES", "family_class"]
