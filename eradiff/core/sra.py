"""Self-Rectifying Attention: the Eq. 10 mask at every attention resolution.

| code name             | symbol                                                   | equation |
| --------------------- | -------------------------------------------------------- | -------- |
| ``M``                 | the image/latent mask, True = erase                       | Sec. 4.2 |
| ``m``                 | m ∈ {0,1}^{wh}, M downsampled to one attention grid      | Sec. 4.2 |
| ``sra_allowed``       | m′_{ij} = 1 ⇔ m_i = 0 or m_j = 0  ("may attend")         | Eq. 10   |
| ``sra_bias``          | 0 where allowed, −∞ (or a finite large negative) else    | Eq. 10–11|
| ``sra_attention``     | Softmax(QKᵀ/√d + bias)·V                                  | Eq. 11   |

Eq. 11 writes "QKᵀ/√d · m′" with m′ ∈ {−∞, 1}; a literal product is undefined (and would flip
signs), so m′ is applied as an additive 0/−∞ bias, which is what "suppressing" the masked keys
means.

Downsampling uses the any-pixel rule: a token is masked if any pixel under it is masked. Grid
sizes follow diffusers' UNet down-sampling (stride-2 convolution with padding 1): each level is
⌈h/2⌉ × ⌈w/2⌉ of the one above, so level k is ⌈h/2^k⌉ × ⌈w/2^k⌉ for any h, w.

The all-masked case. If no token of a sample lies outside the mask, Eq. 10 would block every key
for every query and the softmax would be NaN. This module defines that case as *plain self-
attention for that sample* (every pair allowed): there is no background to attend to, so SRA
has nothing to rectify. Every function here follows that rule, so no row is ever all-blocked.
"""

from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor

from eradiff.core._checks import check_choice

SRAMode = Literal["bias", "bool"]


def downsample_mask(M: Bool[Tensor, " b h w"], *, factor: int) -> Bool[Tensor, " b hf wf"]:
    """Downsample a mask by ``factor`` with the any-pixel rule, output ⌈h/f⌉ × ⌈w/f⌉.

    Args:
        M: boolean mask, shape (b, h, w), True = inside the mask.
        factor: integer ≥ 1 (e.g. 8 for SD's VAE, 2^k for UNet level k).

    Returns:
        Boolean mask of shape (b, ⌈h/factor⌉, ⌈w/factor⌉).
    """
    if M.dtype != torch.bool:
        raise ValueError(f"M must be a boolean tensor, got dtype {M.dtype}")
    if M.ndim != 3:
        raise ValueError(f"M must have shape (b, h, w), got {tuple(M.shape)}")
    if factor < 1:
        raise ValueError(f"factor must be ≥ 1, got {factor}")
    if factor == 1:
        return M
    pooled = F.max_pool2d(M[:, None].to(torch.float32), kernel_size=factor, stride=factor, ceil_mode=True)
    return pooled[:, 0] > 0


def grid_size(h: int, w: int, level: int) -> tuple[int, int]:
    """(⌈h/2^level⌉, ⌈w/2^level⌉): the feature-map size at UNet level ``level`` for an h × w input."""
    if h < 1 or w < 1:
        raise ValueError(f"h and w must be ≥ 1, got {h}×{w}")
    if level < 0:
        raise ValueError(f"level must be ≥ 0, got {level}")
    f = 2**level
    return -(-h // f), -(-w // f)


def level_for_tokens(h: int, w: int, n: int, *, max_level: int = 16) -> int:
    """The UNet level whose grid for an h × w input has exactly ``n`` tokens.

    Raises:
        ValueError: if no level in [0, max_level] has n tokens.
    """
    for level in range(max_level + 1):
        gh, gw = grid_size(h, w, level)
        if gh * gw == n:
            return level
        if gh * gw < n or (gh == 1 and gw == 1):
            break
    raise ValueError(f"n={n} tokens matches no down-sampling level of a {h}×{w} mask")


def tokens_mask(M: Bool[Tensor, " b h w"], n: int) -> Bool[Tensor, " b n"]:
    """m: the mask at the attention grid with ``n`` tokens, flattened row-major (Sec. 4.2).

    Args:
        M: the mask at the UNet input (latent) resolution, shape (b, h, w).
        n: the sequence length of the attention layer.

    Returns:
        m of shape (b, n), True = masked token.
    """
    if M.ndim != 3:
        raise ValueError(f"M must have shape (b, h, w), got {tuple(M.shape)}")
    level = level_for_tokens(M.shape[1], M.shape[2], n)
    return downsample_mask(M, factor=2**level).flatten(1)


def _effective(m: Bool[Tensor, " b n"]) -> Bool[Tensor, " b n"]:
    if m.dtype != torch.bool:
        raise ValueError(f"m must be a boolean tensor, got dtype {m.dtype}")
    if m.ndim != 2:
        raise ValueError(f"m must have shape (b, n), got {tuple(m.shape)}")
    all_masked = m.all(dim=1, keepdim=True)
    return m & ~all_masked


def sra_allowed(m: Bool[Tensor, " b n"]) -> Bool[Tensor, " b 1 n n"]:
    """The Eq. 10 "may attend" mask: True where m_i = 0 or m_j = 0.

    A sample whose tokens are all masked gets all-True (plain attention; see module doc).

    Args:
        m: token mask, shape (b, n), True = masked.

    Returns:
        Boolean tensor of shape (b, 1, n, n) (broadcasts over heads), query i on dim 2, key j on
        dim 3. Symmetric; every row has at least one True.
    """
    keep = ~_effective(m)
    return (keep[:, :, None] | keep[:, None, :])[:, None]


def sra_bias(
    m: Bool[Tensor, " b n"], *, dtype: torch.dtype = torch.float32, finite: bool = False
) -> Float[Tensor, " b 1 n n"]:
    """The Eq. 10 mask as an additive attention bias: 0 where allowed, −∞ (or finite) elsewhere.

    Args:
        m: token mask, shape (b, n), True = masked.
        dtype: floating dtype of the bias.
        finite: use −finfo(dtype).max / 2 instead of −∞ (for fp16 graphs and exporters where −∞
            is unsafe; half the range so adding a score cannot overflow to −∞).

    Returns:
        Float tensor of shape (b, 1, n, n).
    """
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    neg = -torch.finfo(dtype).max / 2 if finite else float("-inf")
    allowed = sra_allowed(m)
    return torch.zeros(allowed.shape, dtype=dtype, device=m.device).masked_fill(~allowed, neg)


def sra_attention(
    q: Float[Tensor, " b heads n d"],
    k: Float[Tensor, " b heads n d"],
    v: Float[Tensor, " b heads n dv"],
    m: Bool[Tensor, " b n"] | None,
    *,
    mode: SRAMode = "bias",
    scale: float | None = None,
) -> Float[Tensor, " b heads n dv"]:
    """Self-Rectifying Attention  SRA(Q, K, V) = Softmax(QKᵀ/√d + bias(m))·V  (Eq. 11).

    Args:
        q, k, v: per-head queries, keys and values (self-attention: the same n for q and k).
        m: token mask (b, n), True = masked; ``None`` gives plain attention (Eq. 5).
        mode: ``"bias"`` (additive float bias) or ``"bool"`` (boolean mask); both are exact.
        scale: softmax scale (default 1/√d).

    Returns:
        The attention output, shape (b, heads, n, dv).
    """
    check_choice("mode", mode, ("bias", "bool"))
    if q.ndim != 4 or k.shape != q.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(
            f"q, k, v must be (b, heads, n, d) with matching b, heads, n; got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    if m is None:
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    if m.shape != (q.shape[0], q.shape[2]):
        raise ValueError(f"m must have shape ({q.shape[0]}, {q.shape[2]}), got {tuple(m.shape)}")
    attn_mask = sra_allowed(m) if mode == "bool" else sra_bias(m, dtype=q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)
