"""Self-Rectifying Attention inside diffusers UNets, through the attention-processor API.

:func:`install_sra` puts one :class:`SRAAttnProcessor` on every *self*-attention layer of a
diffusers model (cross-attention layers keep their processor) and returns the
:class:`SRAState` they share. The caller sets the mask once per image (at the UNet input
resolution) and switches SRA on or off per call::

    state = install_sra(unet)
    with state.use(mask_lat, enabled=True):      # mask_lat: (b, h, w) bool, True = erase
        out = unet(x, t, ...)

Each layer finds its own grid from its sequence length (:func:`eradiff.core.tokens_mask`), and
the Eq. 10 bias for that grid is built once per mask and shared by every layer and every
denoising step that use the same grid. Batches larger than the mask batch (classifier-free
guidance) repeat the mask. With no masked token anywhere the processor runs exactly the stock
computation (no bias), so its output is bit-identical to diffusers' ``AttnProcessor2_0``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from torch import Tensor

from eradiff.core import sra_bias, tokens_mask


class SRAState:
    """The mask shared by all SRA processors of one model, with a per-grid bias cache."""

    def __init__(self) -> None:
        self.mask: Tensor | None = None
        self.enabled: bool = True
        self.always_bias: bool = False  # exporters set this: no data-dependent shortcut in a traced graph
        self._cache: dict[tuple, Tensor | None] = {}

    def set(self, mask: Tensor | None, *, enabled: bool = True) -> None:
        """Set the UNet-input-resolution mask (b, h, w) bool, or None for plain attention."""
        if mask is not None:
            if mask.dtype != torch.bool or mask.ndim != 3:
                raise ValueError(f"mask must be a (b, h, w) boolean tensor, got {mask.dtype} {tuple(mask.shape)}")
        self.mask = mask
        self.enabled = enabled
        self._cache.clear()

    @contextmanager
    def use(self, mask: Tensor | None, *, enabled: bool = True) -> Iterator[SRAState]:
        """Set the mask for the duration of a ``with`` block, then clear it."""
        self.set(mask, enabled=enabled)
        try:
            yield self
        finally:
            self.set(None)

    def bias(self, n: int, batch: int, dtype: torch.dtype, device: torch.device) -> Tensor | None:
        """The (batch, 1, n, n) additive bias for an n-token layer, or None when nothing is masked."""
        if self.mask is None or not self.enabled:
            return None
        key = (n, batch, dtype, device)
        if key not in self._cache:
            self._cache[key] = self._build(n, batch, dtype, device)
        return self._cache[key]

    def _build(self, n: int, batch: int, dtype: torch.dtype, device: torch.device) -> Tensor | None:
        mask = self.mask
        b = mask.shape[0]
        if batch % b != 0:
            raise ValueError(f"attention batch {batch} is not a multiple of the SRA mask batch {b}")
        m = tokens_mask(mask.to(device), n)
        if not self.always_bias and not bool(m.any()):
            return None
        if batch != b:
            m = m.repeat(batch // b, 1)
        finite = dtype in (torch.float16, torch.bfloat16)
        return sra_bias(m, dtype=dtype, finite=finite)


class SRAAttnProcessor:
    """Self-attention with the Eq. 10 bias (Eq. 11); otherwise the same steps as diffusers'
    ``AttnProcessor2_0`` (spatial/group norm, q/k/v projections, SDPA, output projection,
    residual, rescale)."""

    def __init__(self, state: SRAState) -> None:
        self.state = state

    def __call__(
        self,
        attn: Attention,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        temb: Tensor | None = None,
        *args,
        **kwargs,
    ) -> Tensor:
        if encoder_hidden_states is not None:
            raise ValueError("SRAAttnProcessor is for self-attention layers; got encoder_hidden_states")
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            b, ch, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, ch, h * w).transpose(1, 2)
        batch, n, _ = hidden_states.shape

        bias = self.state.bias(n, batch, hidden_states.dtype, hidden_states.device)
        if attention_mask is not None:
            extra = attn.prepare_attention_mask(attention_mask, n, batch).view(batch, attn.heads, -1, n)
            bias = extra if bias is None else bias + extra

        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        hidden_states = F.scaled_dot_product_attention(query, key, value, attn_mask=bias, dropout_p=0.0)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(b, ch, h, w)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def self_attention_names(model: torch.nn.Module) -> list[str]:
    """Module names of the self-attention layers (``Attention`` without cross-attention)."""
    return [name for name, mod in model.named_modules() if isinstance(mod, Attention) and not mod.is_cross_attention]


def install_sra(model: torch.nn.Module) -> SRAState:
    """Install SRA on every self-attention layer of a diffusers model; return the shared state.

    Uses ``model.set_attn_processor`` with a per-layer dict (or each ``Attention.set_processor``
    for models without the model-level API, such as ``UNet2DModel``), so cross-attention layers
    keep the processor they had. Installing twice returns the existing state.
    """
    existing = getattr(model, "_eradiff_sra_state", None)
    if existing is not None:
        return existing
    names = set(self_attention_names(model))
    if not names:
        raise ValueError(f"{type(model).__name__} has no self-attention layer to put SRA on")
    state = SRAState()
    processor = SRAAttnProcessor(state)
    if hasattr(model, "set_attn_processor") and hasattr(model, "attn_processors"):
        current = model.attn_processors
        new = {k: (processor if k.removesuffix(".processor") in names else p) for k, p in current.items()}
        model.set_attn_processor(new)
    else:  # e.g. UNet2DModel, which has no model-level processor API: set each layer's processor
        for name, mod in model.named_modules():
            if name in names:
                mod.set_processor(processor)
    model._eradiff_sra_state = state
    return state
