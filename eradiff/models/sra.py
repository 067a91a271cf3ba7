"""Self-Rectifying Attention inside diffusers UNets, through the attention-processor API.

:func:`install_sra` puts :class:`SRAAttnProcessor` on every *self*-attention layer of a
diffusers model (cross-attention layers keep their processor) and returns the
:class:`SRAState` they share. The mask (at the UNet input resolution) reaches them by one of two
routes::

    state = install_sra(unet)
    with state.use(mask_lat, enabled=True):      # mask_lat: (b, h, w) bool, True = erase
        out = unet(x, t, ...)                    # any model, UNet2DModel included
    out = unet(x, t, encoder_hidden_states=emb, cross_attention_kwargs={"sra_mask": mask_lat})

The second route is diffusers' own channel to attention processors, so SRA runs inside a stock
pipeline call (``pipe(..., cross_attention_kwargs={"sra_mask": m})``); a mask passed that way
wins over the state's for that call, and, being an argument, it is seen again when gradient
checkpointing recomputes a block. With the state route, run the backward inside ``use``.

Living with diffusers. The processor holds nothing: it reads the state that :func:`install_sra`
attached to the ``Attention`` layer it runs on. So a processor diffusers rebuilds as
``type(processor)()`` (IP-Adapter loading does this to every self-attention layer) keeps
following the handle, and ``attn_processors``/``set_attn_processor`` round trips, save/load of
the weights, LoRA (PEFT layers replace the projections, which the processor calls), forward
chunking and gradient checkpointing all keep SRA. Calls that put *another* processor on the
self-attention layers (``fuse_qkv_projections``, ``set_attention_slice``, xformers, a
hand-made ``set_attn_processor``) remove SRA; the model then refuses to run with an SRA mask
and the error names the call (:func:`install_sra` again puts SRA back). diffusers itself refuses
``set_default_attn_processor`` on a model with SRA. Stock cross-attention processors would warn
at every step that they ignore ``sra_mask`` (SRA is self-attention only, so they are right);
that one warning is silenced for cross-attention layers, and only for them.

Each layer finds its own grid from its sequence length (:func:`eradiff.core.tokens_mask`), and
the Eq. 10 mask for that grid is built once per mask and shared by every layer and every
denoising step that use the same grid. Batches larger than the mask batch (classifier-free
guidance) repeat the mask. With no masked token anywhere the processor runs exactly the stock
computation (no bias), so its output is bit-identical to diffusers' ``AttnProcessor2_0``.

Modes. ``SRAState.mode`` picks how the Eq. 10 mask reaches the attention. The eager default is
``"split"`` (exact, and the fastest form measured: ``benchmarks/bench_sra.py``); ``"bias"`` is the
direct additive form. The two export modes build the mask with shape-generic torch only (no
Python decision on data or on symbolic sizes), so a traced graph serves every mask and every size:

| mode            | mask form                                  | attention                         |
| --------------- | ------------------------------------------ | --------------------------------- |
| ``"bias"``      | additive 0/−∞ (finite in fp16), cached     | SDPA; no bias when nothing masked |
| ``"split"``     | token index lists per grid, cached (eager) | two SDPA calls, no n×n mask       |
| ``"bool"``      | boolean "may attend" (Eq. 10)              | SDPA with a boolean mask          |
| ``"bias_finite"``| additive 0/−finfo.max/2                   | explicit QKᵀ·s + bias → softmax → ·V |

``"split"`` is an exact eager alternative to ``"bias"`` (see :func:`split_attention`): unmasked
queries attend to every key and masked queries only to the unmasked keys, gathered, so no n×n
mask is ever built (at 128×128 latents a bias would take 1 GiB per sample) and the masked×masked
block of QKᵀ is never computed. The per-grid cache survives ``set``/``use`` calls with an equal
mask, so a sampler that sets the same mask every step builds each grid's mask once per image.

In the export modes each layer's grid level comes from :meth:`SRAState.record_levels` (one eager
forward at a concrete size), because the level search of :func:`eradiff.core.level_for_tokens`
compares sizes and cannot run on symbolic shapes. The all-masked rule (plain attention) holds in
every mode, so no attention row is ever all-blocked and the finite constant never matters.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from torch import Tensor

from eradiff.core import downsample_mask, level_for_tokens, sra_allowed, sra_bias, tokens_mask

SRAMode = Literal["bias", "bool", "bias_finite", "split"]
EAGER_MODES = ("bias", "split")
SRA_MODES: tuple[str, ...] = get_args(SRAMode)


class SRAState:
    """The mask shared by all SRA processors of one model, with a per-grid bias cache."""

    def __init__(self) -> None:
        self.layers: tuple[Attention, ...] = ()  # the self-attention layers install_sra put SRA on
        self.mask: Tensor | None = None
        self.enabled: bool = True
        self.always_bias: bool = False  # exporters set this: no data-dependent shortcut in a traced graph
        self.mode: SRAMode = "split"  # exact and the fastest eager form (benchmarks/bench_sra.py)
        self.levels: dict[int, int] = {}  # id(Attention) → grid level, for the export modes
        self._cache: dict[tuple, object] = {}
        self._cached_for: Tensor | None = None  # the mask the eager cache was built for

    def set_mode(self, mode: SRAMode) -> None:
        """Switch how the mask reaches attention: ``"split"`` (eager default), ``"bias"`` (eager),
        ``"bool"`` or ``"bias_finite"`` (export modes; see the module docstring)."""
        if mode not in SRA_MODES:
            raise ValueError(f"mode={mode!r} is not valid; choose one of {', '.join(map(repr, SRA_MODES))}")
        self.mode = mode
        self.clear_cache()  # also forgets a mask seen while tracing (a fake tensor must not reach eager)

    @contextmanager
    def exporting(self, mode: SRAMode) -> Iterator[SRAState]:
        """Use an export mode for the duration of a ``with`` block, then restore the previous one."""
        previous = self.mode
        self.set_mode(mode)
        try:
            yield self
        finally:
            self.set_mode(previous)

    def record_levels(self, run: Callable[[], object], mask_hw: tuple[int, int]) -> dict[int, int]:
        """Record every SRA layer's grid level with one eager forward ``run()``.

        Args:
            run: calls the model once with inputs whose mask grid is ``mask_hw`` (concrete sizes).
            mask_hw: (h, w) of the UNet-input mask for that call.

        Returns:
            The recorded map id(Attention) → level (also kept in ``self.levels``).
        """
        self.levels.clear()
        self._recording = mask_hw
        try:
            run()
        finally:
            del self._recording
        if not self.levels:
            raise RuntimeError("no SRA layer ran during the recording forward pass")
        return dict(self.levels)

    def level(self, attn: torch.nn.Module, n: int) -> int:
        """The grid level of layer ``attn`` (n tokens): recorded, or found now while recording."""
        key = id(attn)
        hw = getattr(self, "_recording", None)
        if hw is not None:
            self.levels[key] = level_for_tokens(hw[0], hw[1], int(n))
        if key not in self.levels:
            raise RuntimeError(
                "this attention layer has no recorded grid level; call SRAState.record_levels with an "
                "eager forward pass before tracing"
            )
        return self.levels[key]

    def traced_mask(self, level: int, dtype: torch.dtype, *, sra_mask: Tensor | None = None) -> Tensor | None:
        """The export-mode mask for grid ``level``: (b, 1, n, n) bool ("bool") or finite bias
        ("bias_finite"), built from ``self.mask`` with shape-generic ops; None when SRA is off."""
        if sra_mask is not None:
            raise _no_sra_mask_in_export_mode(self.mode)
        if self.mask is None or not self.enabled:
            return None
        key = ("traced", self.mode, level, dtype)
        if key not in self._cache:
            m = downsample_mask(self.mask, factor=2**level).flatten(1)
            self._cache[key] = sra_allowed(m) if self.mode == "bool" else sra_bias(m, dtype=dtype, finite=True)
        return self._cache[key]

    def set(self, mask: Tensor | None, *, enabled: bool = True) -> None:
        """Set the UNet-input-resolution mask (b, h, w) bool, or None for plain attention."""
        if mask is not None:
            self._follow(mask)
        self.mask = mask
        self.enabled = enabled

    def mask_for_call(self, sra_mask: Tensor | None = None) -> Tensor | None:
        """The mask one attention call applies, or None for plain attention.

        Args:
            sra_mask: the mask from ``cross_attention_kwargs`` (b, h, w) bool, or None. When given
                it wins over the state's mask and switch for this call.
        """
        if sra_mask is None:
            mask = self.mask if self.enabled else None
        elif self.mode not in EAGER_MODES:
            raise _no_sra_mask_in_export_mode(self.mode)
        else:
            mask = sra_mask
        if mask is not None and mask is not self._cached_for:
            self._follow(mask)
        return mask

    def _follow(self, mask: Tensor) -> None:
        """Check ``mask`` and make the per-grid cache belong to it (kept when the mask is equal)."""
        if mask.dtype != torch.bool or mask.ndim != 3:
            raise ValueError(f"mask must be a (b, h, w) boolean tensor, got {mask.dtype} {tuple(mask.shape)}")
        if not self._same_as_cached(mask):
            self._cache.clear()
        eager = self.mode in EAGER_MODES and not (torch.jit.is_tracing() or torch.compiler.is_compiling())
        self._cached_for = mask if eager else None  # never keep a traced/fake tensor

    def _same_as_cached(self, mask: Tensor) -> bool:
        """True if the eager cache was built for an equal mask (never while tracing/exporting)."""
        old = self._cached_for
        if old is None or self.mode not in EAGER_MODES or torch.jit.is_tracing() or torch.compiler.is_compiling():
            return False
        if old is mask:
            return True
        try:
            return old.shape == mask.shape and old.device == mask.device and bool(torch.equal(old, mask))
        except RuntimeError:  # e.g. a fake tensor from an interrupted trace
            return False

    def clear_cache(self) -> None:
        """Drop the cached per-grid masks (they are rebuilt on the next call)."""
        self._cache.clear()
        self._cached_for = None

    @contextmanager
    def use(self, mask: Tensor | None, *, enabled: bool = True) -> Iterator[SRAState]:
        """Set the mask for the duration of a ``with`` block, then clear it."""
        self.set(mask, enabled=enabled)
        try:
            yield self
        finally:
            self.set(None)

    def bias(
        self, n: int, batch: int, dtype: torch.dtype, device: torch.device, *, sra_mask: Tensor | None = None
    ) -> Tensor | None:
        """The (batch, 1, n, n) additive bias for an n-token layer, or None when nothing is masked.
        ``sra_mask``: see :meth:`mask_for_call`."""
        mask = self.mask_for_call(sra_mask)
        if mask is None:
            return None
        key = (n, batch, dtype, device)
        if key not in self._cache:
            self._cache[key] = self._build(mask, n, batch, dtype, device)
        return self._cache[key]

    def split_plan(
        self, n: int, batch: int, device: torch.device, *, sra_mask: Tensor | None = None
    ) -> SplitPlan | None:
        """The token index lists of :func:`split_attention` for an n-token layer (cached per grid),
        or None when SRA is off or no sample has a masked token (plain attention).
        ``sra_mask``: see :meth:`mask_for_call`."""
        mask = self.mask_for_call(sra_mask)
        if mask is None:
            return None
        key = ("split", n, batch, device)
        if key not in self._cache:
            self._cache[key] = _build_split_plan(mask, n, batch, device)
        return self._cache[key]  # type: ignore[return-value]

    def _build(self, mask: Tensor, n: int, batch: int, dtype: torch.dtype, device: torch.device) -> Tensor | None:
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


def _no_sra_mask_in_export_mode(mode: str) -> ValueError:
    return ValueError(
        f"sra_mask in cross_attention_kwargs works in the eager modes, not in export mode {mode!r}: "
        "an exporter sets the mask with SRAState.set"
    )


class SRAAttnProcessor:
    """Self-attention with the Eq. 10 bias (Eq. 11); otherwise the same steps as diffusers'
    ``AttnProcessor2_0`` (spatial/group norm, q/k/v projections, SDPA, output projection,
    residual, rescale).

    Takes no arguments and holds nothing: the mask comes from the :class:`SRAState` that
    :func:`install_sra` attached to the layer, or from ``sra_mask`` in ``cross_attention_kwargs``.
    """

    def __call__(
        self,
        attn: Attention,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        temb: Tensor | None = None,
        *args,
        sra_mask: Tensor | None = None,
        **kwargs,
    ) -> Tensor:
        if encoder_hidden_states is not None:
            raise ValueError("SRAAttnProcessor is for self-attention layers; got encoder_hidden_states")
        state = sra_state(attn)
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            b, ch, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, ch, h * w).transpose(1, 2)
        batch, n, _ = hidden_states.shape

        mode = state.mode
        plan = None
        if mode == "split" and attention_mask is not None:
            mode = "bias"  # an extra attention mask needs the additive form
        if mode == "split":
            bias = None
            plan = state.split_plan(n, batch, hidden_states.device, sra_mask=sra_mask)
        elif mode == "bias":
            bias = state.bias(n, batch, hidden_states.dtype, hidden_states.device, sra_mask=sra_mask)
        else:
            if attention_mask is not None:
                raise ValueError(f"SRA export mode {mode!r} does not combine with an extra attention_mask")
            bias = state.traced_mask(state.level(attn, n), hidden_states.dtype, sra_mask=sra_mask)
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

        if mode == "bias_finite":
            hidden_states = _explicit_attention(query, key, value, bias)
        elif plan is not None:
            hidden_states = split_attention(query, key, value, plan)
        else:
            hidden_states = F.scaled_dot_product_attention(query, key, value, attn_mask=bias, dropout_p=0.0)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(b, ch, h, w)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


SplitPlan = list[tuple[Tensor | None, Tensor | None, Tensor | None]]


def _build_split_plan(mask: Tensor, n: int, batch: int, device: torch.device) -> SplitPlan | None:
    """Per mask sample: (attention-batch indices or None for all, unmasked tokens, masked tokens).

    Attention sample j uses mask sample j mod b (classifier-free guidance repeats the batch). A
    sample with nothing masked, or with every token masked (the core's all-masked rule), gets
    (indices, None, None): plain attention.
    """
    b = mask.shape[0]
    if batch % b != 0:
        raise ValueError(f"attention batch {batch} is not a multiple of the SRA mask batch {b}")
    m = tokens_mask(mask.to(device), n)
    m = m & ~m.all(dim=1, keepdim=True)
    if not bool(m.any()):
        return None
    plan: SplitPlan = []
    for i in range(b):
        index = None if b == 1 else torch.arange(i, batch, b, device=device)
        if not bool(m[i].any()):
            plan.append((index, None, None))
        else:
            plan.append((index, (~m[i]).nonzero().flatten(), m[i].nonzero().flatten()))
    return plan


def split_attention(q: Tensor, k: Tensor, v: Tensor, plan: SplitPlan) -> Tensor:
    """SRA (Eq. 10–11) without an n×n mask: per sample, unmasked queries attend to all keys
    (plain attention rows) and masked queries attend to the gathered unmasked keys only.

    Exact: Eq. 10 allows (i, j) iff m_i = 0 or m_j = 0, which is precisely these two row sets.
    The masked×masked block of QKᵀ is never computed, so it costs (n_u·n + n_m·n_u)/n² of a full
    attention (0.96 at a 20 % mask) plus the gathers.

    Args:
        q, k, v: (batch, heads, n, d) queries, keys and values of one self-attention layer.
        plan: from :meth:`SRAState.split_plan`.

    Returns:
        (batch, heads, n, d_v), the attention output.
    """
    if len(plan) == 1 and plan[0][0] is None:
        _, keep, masked = plan[0]
        return _split_one(q, k, v, keep, masked)
    out = torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
    for index, keep, masked in plan:
        out.index_copy_(0, index, _split_one(q[index], k[index], v[index], keep, masked))
    return out


def _split_one(q: Tensor, k: Tensor, v: Tensor, keep: Tensor | None, masked: Tensor | None) -> Tensor:
    if keep is None or masked is None:
        return F.scaled_dot_product_attention(q, k, v)
    out = torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
    out.index_copy_(2, keep, F.scaled_dot_product_attention(q.index_select(2, keep), k, v))
    k_keep, v_keep = k.index_select(2, keep), v.index_select(2, keep)
    out.index_copy_(2, masked, F.scaled_dot_product_attention(q.index_select(2, masked), k_keep, v_keep))
    return out


def _explicit_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None) -> Tensor:
    """Softmax(QKᵀ/√d + bias)·V written as MatMul → Add → Softmax → MatMul (Eq. 11).

    Exporters decompose SDPA with extra nodes (a √scale split, and for boolean masks an
    IsNaN/Where guard after the softmax); this form is the exact pattern MHA fusers match.
    """
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-1, -2))
    if bias is not None:
        scores = scores + bias
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def self_attention_names(model: torch.nn.Module) -> list[str]:
    """Module names of the self-attention layers (``Attention`` without cross-attention)."""
    return [name for name, mod in model.named_modules() if isinstance(mod, Attention) and not mod.is_cross_attention]


_STATE = "_eradiff_sra_state"  # the attribute that holds the SRAState, on the model and on each layer


def sra_state(attn: torch.nn.Module) -> SRAState:
    """The :class:`SRAState` that :func:`install_sra` attached to an attention layer."""
    state = getattr(attn, _STATE, None)
    if state is None:
        raise RuntimeError(
            "SRAAttnProcessor runs on an attention layer that install_sra did not prepare; "
            "call eradiff.models.sra.install_sra(model) on the model that holds it"
        )
    return state


def install_sra(model: torch.nn.Module) -> SRAState:
    """Install SRA on every self-attention layer of a diffusers model; return the shared state.

    The state is attached to the model and to each self-attention ``Attention`` module, where
    :class:`SRAAttnProcessor` finds it; cross-attention layers keep the processor they had. The
    model gets a forward pre-hook that refuses to apply an SRA mask once a diffusers call has
    replaced the processor of any of those layers (see the module docstring). Installing again
    returns the same state and puts SRA back on every self-attention layer that lost it.

    Args:
        model: a diffusers model (``UNet2DConditionModel``, ``UNet2DModel``, …) or any module
            holding diffusers ``Attention`` layers.

    Returns:
        The state shared by all SRA layers of ``model``.
    """
    layers = tuple(mod for mod in model.modules() if isinstance(mod, Attention) and not mod.is_cross_attention)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no self-attention layer to put SRA on")
    state = getattr(model, _STATE, None)
    if state is None:
        state = SRAState()
        setattr(model, _STATE, state)
        model.register_forward_pre_hook(_refuse_lost_sra, with_kwargs=True)
    state.layers = layers
    processor = SRAAttnProcessor()
    for attn in layers:
        setattr(attn, _STATE, state)
        if not isinstance(attn.processor, SRAAttnProcessor):
            attn.set_processor(processor)
    logging.getLogger(Attention.__module__).addFilter(_CROSS_ATTENTION_IGNORES_SRA_MASK)
    return state


# The diffusers calls that put each processor on every layer (for the error of _refuse_lost_sra).
_REPLACED_BY = {
    "FusedAttnProcessor2_0": "fuse_qkv_projections()",
    "SlicedAttnProcessor": "set_attention_slice() / enable_attention_slicing()",
    "XFormersAttnProcessor": "enable_xformers_memory_efficient_attention()",
    "AttnProcessor": "set_default_attn_processor()",
}


def _refuse_lost_sra(model: torch.nn.Module, args: tuple, kwargs: dict) -> None:
    """Forward pre-hook: a call that would apply SRA needs SRA on every self-attention layer."""
    state: SRAState = getattr(model, _STATE)
    routed = (kwargs.get("cross_attention_kwargs") or {}).get("sra_mask") is not None
    if not routed and (state.mask is None or not state.enabled):
        return
    replaced = [attn for attn in state.layers if not isinstance(attn.processor, SRAAttnProcessor)]
    if replaced:
        names = sorted({type(attn.processor).__name__ for attn in replaced})
        calls = sorted({_REPLACED_BY.get(name, "set_attn_processor() / Attention.set_processor()") for name in names})
        raise RuntimeError(
            f"SRA is installed on this {type(model).__name__}, but {len(replaced)} of its {len(state.layers)} "
            f"self-attention layers now run {', '.join(names)} (put there by {' or '.join(calls)}), which would "
            "ignore the SRA mask. SRA does not combine with that call; run eradiff.models.sra.install_sra(model) "
            "after it to put SRA back on those layers"
        )


class _CrossAttentionIgnoresSRAMask(logging.Filter):
    """Drops diffusers' "cross_attention_kwargs ['sra_mask'] are not expected by …" warning when a
    cross-attention layer logs it.

    ``cross_attention_kwargs`` reaches both attention layers of every transformer block, and a stock
    cross-attention processor says, once per layer and step, that it ignores ``sra_mask``: true and
    intended, SRA is self-attention only. A self-attention layer without SRA still warns. diffusers'
    log record does not name the layer, so the filter reads it from the caller's frame: the nearest
    frame whose ``self`` is an ``Attention`` (its ``forward`` logs the warning).
    """

    MESSAGE = "cross_attention_kwargs ['sra_mask'] are not expected by "

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith(self.MESSAGE):
            return True
        frame = sys._getframe(1)
        while frame is not None:
            layer = frame.f_locals.get("self")
            if isinstance(layer, Attention):
                return not layer.is_cross_attention
            frame = frame.f_back
        return True


_CROSS_ATTENTION_IGNORES_SRA_MASK = _CrossAttentionIgnoresSRAMask()
