"""Methods under evaluation: erasure models (through the erase pipeline) and classical baselines.

A method spec on the command line is ``NAME=KIND[:key=value,...]``:

* ``KIND`` is a classical method (``telea``, ``ns``, ``biharmonic``, ``patchmatch``) or a model
  (``default``, a ``.safetensors`` checkpoint, a diffusers folder, a hub id, an ``.onnx`` file);
* options of a model are :class:`eradiff.pipeline.erase.EraseOptions` fields (``steps``,
  ``strength``, ``sra``, ``init``, ``eta``, ``seed``, ``dilate``, ``reimpose_known``, …); a
  classical method takes ``radius``.

Examples: ``eradiff=default``, ``"w/o SRA=default:sra=false"``, ``s0.6=runs/cro/model.safetensors:strength=0.6``,
``telea=telea``. Without ``NAME=`` the kind is the name.

Every method sees the same mask: for models the pipeline's own dilation defaults to 0 here
(``dilate=0``) unless the spec sets it, so that no method gets a larger region than another.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from eradiff.baselines import METHODS as CLASSICAL
from eradiff.baselines import inpaint_classical


class MethodSpecError(ValueError):
    """A method spec cannot be parsed (one-line message)."""


class Method(Protocol):
    name: str

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray: ...


@dataclass
class ClassicalMethod:
    """A classical inpainting baseline (:func:`eradiff.baselines.inpaint_classical`)."""

    name: str
    method: str
    radius: int = 5

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return inpaint_classical(image, mask, method=self.method, radius=self.radius)  # type: ignore[arg-type]


@dataclass
class ModelMethod:
    """An erasure model run through :func:`eradiff.pipeline.erase.erase` with fixed options."""

    name: str
    model: Any
    options: Any

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        from eradiff.pipeline.erase import erase

        return erase(self.model, image, mask, self.options).image


def _parse_value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_spec(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``NAME=KIND[:k=v,...]`` → (name, kind, options)."""
    name, sep, rest = spec.partition("=")
    if not sep or ":" in name or not name:
        name, rest = "", spec
    kind, _, opts = rest.partition(":")
    kind = kind.strip()
    if not kind:
        raise MethodSpecError(f"method spec {spec!r} names no method")
    options: dict[str, Any] = {}
    for item in filter(None, (o.strip() for o in opts.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise MethodSpecError(f"method spec {spec!r}: option {item!r} is not key=value")
        options[key.strip()] = _parse_value(value.strip())
    return (name.strip() or kind), kind, options


def build_method(spec: str, *, device: str = "cpu", model_cache: dict[str, Any] | None = None) -> Method:
    """Build a method from a spec (see the module docstring); models are loaded once per kind."""
    name, kind, options = parse_spec(spec)
    if kind in CLASSICAL:
        unknown = set(options) - {"radius"}
        if unknown:
            raise MethodSpecError(f"{name}: classical methods take only 'radius', got {sorted(unknown)}")
        return ClassicalMethod(name, kind, int(options.get("radius", 5)))
    from eradiff.models.loading import load_model
    from eradiff.pipeline.erase import EraseOptions

    fields = {f.name for f in dataclasses.fields(EraseOptions)}
    unknown = set(options) - fields
    if unknown:
        raise MethodSpecError(f"{name}: unknown option(s) {sorted(unknown)}; valid: {', '.join(sorted(fields))}")
    options.setdefault("dilate", 0)
    cache = model_cache if model_cache is not None else {}
    if kind not in cache:
        cache[kind] = load_model(None if kind == "default" else kind, device=device)
    try:
        erase_options = EraseOptions(**options)
    except (TypeError, ValueError) as e:
        raise MethodSpecError(f"{name}: {e}") from None
    return ModelMethod(name, cache[kind], erase_options)


def timed(method: Method, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float]:
    """Run a method and return (output, seconds)."""
    t0 = time.perf_counter()
    out = method(image, mask)
    return out, time.perf_counter() - t0
