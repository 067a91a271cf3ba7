"""Argument checks shared by the core modules (messages name the bad argument)."""

from torch import Tensor


def check_same_shape(name: str, x: Tensor, ref_name: str, ref: Tensor) -> None:
    if x.shape != ref.shape:
        raise ValueError(f"{name} must have the shape of {ref_name} {tuple(ref.shape)}, got {tuple(x.shape)}")


def check_per_sample(name: str, v: Tensor, ref: Tensor) -> None:
    if v.ndim != 1 or v.shape[0] != ref.shape[0]:
        raise ValueError(f"{name} must be a per-sample tensor of shape ({ref.shape[0]},), got {tuple(v.shape)}")


def check_choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"{name}={value!r} is not valid; choose one of {', '.join(map(repr, valid))}")


def expand_as(v: Tensor, x: Tensor) -> Tensor:
    """Reshape a per-sample (b,) tensor to broadcast against x (b, ...), in x's dtype."""
    return v.to(dtype=x.dtype, device=x.device).reshape(v.shape[0], *([1] * (x.ndim - 1)))
