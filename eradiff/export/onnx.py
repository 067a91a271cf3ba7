"""Export the denoising UNet of an :class:`~eradiff.models.family.ErasureModel` to ONNX, with
Self-Rectifying Attention inside the graph.

The graph takes the SRA mask at the UNet-input grid as an input and every self-attention layer
builds its own Eq. 10 mask from it in-graph (any-pixel downsampling to the layer's grid, the
all-masked rule, Sec. 4.2), so one artifact serves every mask, batch and size.

| graph input               | shape            | dtype          | meaning                                     |
| ------------------------- | ---------------- | -------------- | ------------------------------------------- |
| ``sample``                | (B, C_in, h, w)  | float32/16     | noisy latents ⊕ conditioning channels       |
| ``timestep``              | (B,)             | float32        | diffusers timestep τ                        |
| ``sra_mask``              | (B, h, w)        | bool           | M at the UNet-input grid, True = erase      |
| ``encoder_hidden_states`` | (B, L, D)        | float32/16     | only with ``prompt_input=True`` (latent)    |
| output ``model_output``   | (B, C_out, h, w) | as ``sample``  | ε̂ or v̂                                      |

Without ``prompt_input`` the latent family's empty-prompt embedding is a graph constant; with
``sra=False`` there is no ``sra_mask`` input (plain attention).

Two flavours:

| flavour        | opset | masked self-attention in the graph                  | exporter        |
| -------------- | ----- | --------------------------------------------------- | --------------- |
| ``"trt"``      | 23–24 | one ONNX ``Attention`` node with a boolean mask     | dynamo          |
| ``"portable"`` | 17–18 | ``MatMul → Add(finite bias) → Softmax → MatMul``    | 18 dynamo, 17 TorchScript |

TensorRT ≥ 10.14 imports the ``Attention`` node as its fused ``IAttention`` layer; the portable
chain has nothing between the softmax and its MatMul (no ``IsNaN``/``Where``), the pattern MHA
fusers (TensorRT < 10.14, onnxruntime) match.

Measured traps this module avoids (torch 2.13, onnxruntime 1.32): the dynamo exporter cannot
down-convert to opset 17 (so opset 17 uses the TorchScript exporter); a
``UNet2DConditionModel`` traced at a latent size divisible by 2^(levels−1) drops the
``upsample_size`` path and then fails at other sizes, so the example size is chosen off that grid
(:func:`example_size`); the all-masked case never reaches a lowest-float constant because the
in-graph mask follows the all-masked rule (plain attention), so no attention row is all-blocked.

Every exported file carries ``metadata_props`` (:data:`METADATA_KEYS`), so a runtime can rebuild
the erasure model around it without other files (pixel family) or with only the VAE and text
encoder of the base model (latent family).
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

import eradiff
from eradiff.errors import EraDiffError
from eradiff.models.family import ErasureModel
from eradiff.models.sra import SRAState, install_sra, self_attention_names

Flavour = Literal["trt", "portable"]
FLAVOURS: tuple[str, ...] = ("trt", "portable")
ExternalData = Literal["auto", "always", "never"]
EXTERNAL_DATA_CHOICES: tuple[str, ...] = ("auto", "always", "never")
DEFAULT_OPSET = {"trt": 23, "portable": 18}
OPSETS = {"trt": (23, 24), "portable": (17, 18)}
EXTERNAL_DATA_THRESHOLD = 1_900_000_000  # bytes of weights; protobuf cannot hold 2 GiB
INPUT_NAMES = ("sample", "timestep", "sra_mask", "encoder_hidden_states")
OUTPUT_NAME = "model_output"
METADATA_KEYS = (
    "eradiff.version", "eradiff.flavour", "eradiff.opset", "eradiff.family", "eradiff.name",
    "eradiff.native_size", "eradiff.size_multiple", "eradiff.latent_multiple", "eradiff.latent_scale",
    "eradiff.schedule",
    "eradiff.sra", "eradiff.sra_layers", "eradiff.dtype", "eradiff.prompt", "eradiff.inputs", "eradiff.config",
    "eradiff.unet_class", "eradiff.unet_config", "eradiff.example_size",
)  # fmt: skip


class ExportError(EraDiffError):
    """The model cannot be exported as asked (one-line message)."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote.

    Attributes:
        path: the ``.onnx`` file.
        data_path: the external-data file, or None when the weights are inside ``path``.
        flavour, opset: as exported.
        inputs: the graph's input names, in order.
        self_attention_layers: number of self-attention layers of the UNet (each carries SRA).
        metadata: the ``metadata_props`` written into the file.
        graph: :func:`attention_report` of the exported graph.
    """

    path: Path
    data_path: Path | None
    flavour: str
    opset: int
    inputs: tuple[str, ...]
    self_attention_layers: int
    metadata: dict[str, str]
    graph: dict[str, Any] = field(default_factory=dict)


class ExportableUNet(nn.Module):
    """The UNet as the graph sees it: ``forward(sample, timestep[, sra_mask][, encoder_hidden_states])``.

    The forward sets the shared :class:`~eradiff.models.sra.SRAState` mask from its ``sra_mask``
    argument, so every SRA processor builds its layer's Eq. 10 mask from the one graph input.

    Args:
        unet: a diffusers ``UNet2DModel`` or ``UNet2DConditionModel`` (SRA installed when ``sra``).
        state: the UNet's SRA state (None when ``sra`` is False).
        prompt_embeds: (1, L, D) constant text embedding for a cross-attention UNet without a
            prompt input; None otherwise.
        prompt_input: the graph takes ``encoder_hidden_states`` as an input.
    """

    def __init__(
        self,
        unet: nn.Module,
        state: SRAState | None,
        *,
        prompt_embeds: Tensor | None = None,
        prompt_input: bool = False,
    ) -> None:
        super().__init__()
        self.unet = unet
        self.state = state
        self.prompt_input = prompt_input
        if prompt_embeds is not None:
            self.register_buffer("prompt_embeds", prompt_embeds.detach().clone(), persistent=False)
        else:
            self.prompt_embeds = None

    def forward(self, *inputs: Tensor) -> Tensor:
        sample, timestep = inputs[0], inputs[1]
        rest = list(inputs[2:])
        sra_mask = rest.pop(0) if self.state is not None else None
        kwargs: dict[str, Tensor] = {}
        if self.prompt_input:
            kwargs["encoder_hidden_states"] = rest.pop(0)
        elif self.prompt_embeds is not None:
            kwargs["encoder_hidden_states"] = self.prompt_embeds.expand(sample.shape[0], -1, -1)
        if self.state is None:
            return self.unet(sample, timestep, **kwargs, return_dict=False)[0]
        self.state.set(sra_mask)
        try:
            return self.unet(sample, timestep, **kwargs, return_dict=False)[0]
        finally:
            self.state.set(None)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not valid; choose one of {', '.join(map(repr, choices))}")


def is_conditional(unet: nn.Module) -> bool:
    """True for a cross-attention UNet (``UNet2DConditionModel``), which needs text embeddings."""
    return getattr(unet.config, "cross_attention_dim", None) is not None and hasattr(unet, "num_upsamplers")


def latent_multiple(unet: nn.Module) -> int:
    """The multiple the UNet-input sides must be: 1 for ``UNet2DConditionModel`` (it forwards
    upsample sizes), 2^(levels−1) for ``UNet2DModel`` (fixed ×2 upsampling)."""
    if is_conditional(unet):
        return 1
    return 2 ** (len(unet.config.block_out_channels) - 1)


def latent_scale(model: ErasureModel) -> int:
    """Image pixels per UNet-input cell: the unshuffle factor (pixel) or the VAE scale (latent)."""
    for attr in ("factor", "vae_scale"):
        value = getattr(model, attr, None)
        if isinstance(value, int):
            return value
    raise ExportError(f"{type(model).__name__} has neither a pixel-unshuffle factor nor a VAE scale")


def example_size(unet: nn.Module) -> tuple[int, int]:
    """A UNet-input (h, w) to trace at that generalises to every valid size.

    ``UNet2DConditionModel``: both sides off the 2^u grid (u = number of upsamplers), so the
    traced graph keeps the ``upsample_size`` path that every size needs (the multiple-of-8 trap).
    ``UNet2DModel``: odd multiples of 2^(levels−1), non-square (3 and 5 cells at the bottom).
    """
    if is_conditional(unet):
        f = 2 ** int(unet.num_upsamplers)
        return (2 * f + 1, 3 * f + 1) if f > 1 else (5, 7)
    f = latent_multiple(unet)
    return 3 * f, 5 * f


def _unet_and_prompt(model: ErasureModel, *, prompt_input: bool) -> tuple[nn.Module, Tensor | None]:
    unet = getattr(model, "unet", None)
    if not isinstance(unet, nn.Module) or not hasattr(unet, "config"):
        raise ExportError(f"{type(model).__name__} has no torch UNet to export (is it already an exported model?)")
    if not is_conditional(unet):
        if prompt_input:
            raise ExportError("this UNet has no cross-attention; prompt_input needs a text-conditioned UNet")
        return unet, None
    if prompt_input:
        return unet, None
    encode_prompt = getattr(model, "encode_prompt", None)
    if encode_prompt is None:
        raise ExportError("a cross-attention UNet needs the model's empty-prompt embedding (encode_prompt)")
    return unet, encode_prompt("")


def _metadata(
    model: ErasureModel,
    unet: nn.Module,
    *,
    flavour: str,
    opset: int,
    sra: bool,
    dtype: torch.dtype,
    inputs: tuple[str, ...],
    prompt_input: bool,
    example_hw: tuple[int, int],
) -> dict[str, str]:
    unet_config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(unet.config).items()
                   if not k.startswith("_")}  # fmt: skip
    try:
        config = model.config_dict()
    except NotImplementedError:
        config = {}
    meta = {
        "eradiff.version": eradiff.__version__,
        "eradiff.flavour": flavour,
        "eradiff.opset": str(opset),
        "eradiff.family": model.family,
        "eradiff.name": model.name,
        "eradiff.native_size": str(model.native_size),
        "eradiff.size_multiple": str(model.size_multiple),
        "eradiff.latent_multiple": str(latent_multiple(unet)),
        "eradiff.latent_scale": str(latent_scale(model)),
        "eradiff.schedule": json.dumps(model.schedule.to_dict(), sort_keys=True),
        "eradiff.sra": "1" if sra else "0",
        "eradiff.sra_layers": str(len(self_attention_names(unet))),
        "eradiff.dtype": str(dtype).removeprefix("torch."),
        "eradiff.prompt": "input" if prompt_input else ("constant" if is_conditional(unet) else "none"),
        "eradiff.inputs": ",".join(inputs),
        "eradiff.config": json.dumps(config, sort_keys=True, default=str),
        "eradiff.unet_class": type(unet).__name__,
        "eradiff.unet_config": json.dumps(unet_config, sort_keys=True, default=str),
        "eradiff.example_size": f"{example_hw[0]}x{example_hw[1]}",
    }
    assert set(meta) == set(METADATA_KEYS)
    return meta


@contextmanager
def _quiet_export() -> Iterator[None]:
    """Hide the exporters' progress prints and their routine warnings (errors still raise)."""
    import contextlib
    import io
    import logging
    import warnings

    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def export_onnx(
    model: ErasureModel,
    path: str | os.PathLike[str],
    *,
    flavour: Flavour = "trt",
    opset: int | None = None,
    fp16: bool = False,
    sra: bool = True,
    prompt_input: bool = False,
    example_hw: tuple[int, int] | None = None,
    external_data: ExternalData = "auto",
    check: bool = True,
) -> ExportResult:
    """Export the model's denoising UNet to ONNX with SRA in the graph (module docstring).

    Args:
        model: a pixel- or latent-family model with a torch UNet (``model.unet``).
        path: destination ``.onnx`` file (its folder is created).
        flavour: ``"trt"`` (opset ≥ 23, one boolean-masked ``Attention`` node per self-attention
            layer) or ``"portable"`` (opset 17–18, ``MatMul → Add → Softmax → MatMul`` with a
            finite additive bias).
        opset: ONNX opset; default 23 for ``"trt"`` and 18 for ``"portable"``.
        fp16: export fp16 weights and activations (for GPUs; the mask stays boolean and the
            timestep float32).
        sra: put SRA in the graph (``sra_mask`` input); False exports plain attention.
        prompt_input: latent family: take ``encoder_hidden_states`` as an input instead of the
            constant empty-prompt embedding.
        example_hw: UNet-input (h, w) to trace at; default :func:`example_size` (avoid sizes on
            the 2^(levels−1) grid for ``UNet2DConditionModel``; see the module docstring).
        external_data: ``"auto"`` stores weights in ``PATH.data`` when they exceed
            :data:`EXTERNAL_DATA_THRESHOLD` bytes (protobuf's 2 GiB limit); ``"always"``/``"never"``.
        check: run ``onnx.checker.check_model(full_check=True)`` on the written file.

    Returns:
        :class:`ExportResult`.

    Raises:
        ValueError: a bad flavour, opset or external-data choice.
        ExportError: a model that cannot be exported (no torch UNet, prompt input on a pixel model).
    """
    _check_choice("flavour", flavour, FLAVOURS)
    _check_choice("external_data", external_data, EXTERNAL_DATA_CHOICES)
    opset = DEFAULT_OPSET[flavour] if opset is None else int(opset)
    lo, hi = OPSETS[flavour]
    if not lo <= opset <= hi:
        raise ValueError(f"opset={opset} is not valid for the {flavour!r} flavour; choose {lo}–{hi}")
    path = Path(path)
    unet, prompt_embeds = _unet_and_prompt(model, prompt_input=prompt_input)
    dtype = torch.float16 if fp16 else torch.float32
    if fp16 or next(unet.parameters()).dtype != dtype:
        unet = copy.deepcopy(unet).to(dtype)  # the caller's model keeps its weights and dtype
    if prompt_embeds is not None:
        prompt_embeds = prompt_embeds.to(dtype)
    device = next(unet.parameters()).device
    was_training = unet.training
    unet.eval()

    h, w = example_hw if example_hw is not None else example_size(unet)
    m = latent_multiple(unet)
    if h % m or w % m:
        raise ValueError(f"example_hw={h}×{w} must be multiples of {m} for {type(unet).__name__}")
    in_ch = int(unet.config.in_channels)
    gen = torch.Generator().manual_seed(0)
    sample = torch.randn(2, in_ch, h, w, generator=gen).to(device, dtype)
    timestep = torch.tensor([999.0, 1.0], device=device)
    mask = torch.zeros(2, h, w, dtype=torch.bool)
    mask[:, h // 3 : h // 3 + max(1, h // 3), w // 4 : w // 4 + max(1, w // 2)] = True
    mask = mask.to(device)
    names = ["sample", "timestep"] + (["sra_mask"] if sra else []) + (["encoder_hidden_states"] if prompt_input else [])
    args: list[Tensor] = [sample, timestep] + ([mask] if sra else [])
    if prompt_input:
        dim = int(unet.config.cross_attention_dim)
        args.append(torch.randn(2, 77, dim, generator=gen).to(device, dtype))
    meta = _metadata(model, unet, flavour=flavour, opset=opset, sra=sra, dtype=dtype, inputs=tuple(names),
                     prompt_input=prompt_input, example_hw=(h, w))  # fmt: skip

    state = install_sra(unet) if sra else None
    wrapper = ExportableUNet(unet, state, prompt_embeds=prompt_embeds, prompt_input=prompt_input)
    mode = "bool" if flavour == "trt" else "bias_finite"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with torch.no_grad(), _sra_mode(state, mode):
            if state is not None:
                state.record_levels(lambda: wrapper(*args), (h, w))
            with _quiet_export():
                if opset >= 18:
                    _export_dynamo(wrapper, tuple(args), names, path, opset=opset, meta=meta, external=external_data)
                else:
                    _export_torchscript(wrapper, tuple(args), names, path, opset=opset, meta=meta,
                                        external=external_data)  # fmt: skip
    finally:
        unet.train(was_training)
    data_path = path.with_name(path.name + ".data")
    data_path = data_path if data_path.exists() else None
    if check:
        check_onnx(path)
    import onnx

    graph = attention_report(onnx.load(str(path), load_external_data=False))
    return ExportResult(
        path=path, data_path=data_path, flavour=flavour, opset=opset, inputs=tuple(names),
        self_attention_layers=len(self_attention_names(unet)), metadata=meta, graph=graph,
    )  # fmt: skip


@contextmanager
def _sra_mode(state: SRAState | None, mode: str) -> Iterator[None]:
    if state is None:
        yield
        return
    with state.exporting(mode):  # type: ignore[arg-type]
        yield


def _dynamic_axes(names: list[str]) -> dict[str, dict[int, str]]:
    return {k: v for k, v in _DYNAMIC_DIMS.items() if k in names or k == OUTPUT_NAME}


_DYNAMIC_DIMS = {"sample": {0: "batch", 2: "height", 3: "width"}, "timestep": {0: "batch"},
                 "sra_mask": {0: "batch", 1: "height", 2: "width"}, "encoder_hidden_states": {0: "batch"},
                 OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"}}  # fmt: skip


def name_dynamic_dims(proto: Any) -> None:
    """Rename the exporter's symbolic dims (``s27``…) to batch/height/width everywhere, and check
    that no graph input or output dim that must be dynamic was specialised to a constant.

    The dynamo exporter is run with ``Dim.AUTO`` because diffusers code branches on sizes (the
    ``upsample_size`` path, a batch ≥ 64 ``contiguous()``) and named ``Dim`` ranges turn those
    guards into export errors; the branches do not change the graph's arithmetic.

    Raises:
        ExportError: a dynamic dim came out as a constant.
    """
    import re

    graph = proto.graph
    rename: dict[str, str] = {}
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        for axis, label in _DYNAMIC_DIMS.get(value.name, {}).items():
            dim = dims[axis]
            if not dim.dim_param:
                raise ExportError(
                    f"the exporter fixed {value.name} axis {axis} ({label}) to {dim.dim_value}; the graph would not "
                    "serve other sizes"
                )
            rename[dim.dim_param] = label
    if not rename:
        return
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(rename, key=len, reverse=True))) + r")\b")
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = pattern.sub(lambda m: rename[m.group(1)], dim.dim_param)


def _weights_bytes(module: nn.Module) -> int:
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def _use_external(external: str, module: nn.Module) -> bool:
    if external == "auto":
        return _weights_bytes(module) > EXTERNAL_DATA_THRESHOLD
    return external == "always"


def _export_dynamo(
    wrapper: nn.Module, args: tuple[Tensor, ...], names: list[str], path: Path, *, opset: int, meta: dict[str, str],
    external: str,
) -> None:  # fmt: skip
    from torch.export import Dim

    batch = height = width = Dim.AUTO
    shapes = {"sample": {0: batch, 2: height, 3: width}, "timestep": {0: batch},
              "sra_mask": {0: batch, 1: height, 2: width}, "encoder_hidden_states": {0: batch}}  # fmt: skip
    program = torch.onnx.export(
        wrapper, args, dynamo=True, opset_version=opset, input_names=names, output_names=[OUTPUT_NAME],
        dynamic_shapes=(tuple(shapes[n] for n in names),), optimize=True, verbose=False,
    )  # fmt: skip
    if program is None:  # pragma: no cover - torch < 2.5
        raise ExportError("this torch version's dynamo exporter returned no program")
    program.model.metadata_props.update(meta)
    if path.with_name(path.name + ".data").exists():
        path.with_name(path.name + ".data").unlink()
    program.save(str(path), external_data=_use_external(external, wrapper))
    import onnx

    proto = onnx.load(str(path), load_external_data=False)  # external weights stay where they are
    name_dynamic_dims(proto)
    onnx.save_model(proto, str(path))


def _export_torchscript(
    wrapper: nn.Module, args: tuple[Tensor, ...], names: list[str], path: Path, *, opset: int, meta: dict[str, str],
    external: str,
) -> None:  # fmt: skip
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "model.onnx"
        torch.onnx.export(
            wrapper, args, str(raw), dynamo=False, opset_version=opset, input_names=names,
            output_names=[OUTPUT_NAME], dynamic_axes=_dynamic_axes(names), do_constant_folding=True,
        )  # fmt: skip
        proto = onnx.load(str(raw))
    name_dynamic_dims(proto)
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    save_proto(proto, path, external=_use_external(external, wrapper))


def save_proto(proto: Any, path: Path, *, external: bool) -> None:
    """Save a ModelProto, with all weights in ``PATH.data`` when ``external``."""
    import onnx

    data = path.with_name(path.name + ".data")
    if data.exists():
        data.unlink()
    if external:
        onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data.name, size_threshold=1024)  # fmt: skip
    else:
        onnx.save_model(proto, str(path))


def check_onnx(path: str | os.PathLike[str]) -> None:
    """``onnx.checker.check_model(full_check=True)`` on a file (path form: works with external data)."""
    import onnx

    onnx.checker.check_model(str(path), full_check=True)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (weights are not loaded)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


# --------------------------------------------------------------------------------------------
# Graph inspection (tests, the CLI report)
# --------------------------------------------------------------------------------------------


def _consumers(graph: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def _producers(graph: Any) -> dict[str, Any]:
    return {o: node for node in graph.node for o in node.output}


def attention_report(proto: Any) -> dict[str, Any]:
    """Count how attention appears in a graph.

    Returns a dict with: ``op_counts`` (op type → count); ``attention_nodes`` (ONNX ``Attention``
    nodes), ``masked_attention_nodes`` (those with a boolean ``attn_mask`` input),
    ``softmax_nodes``; ``softmax_to_matmul`` (softmaxes whose every consumer is a MatMul);
    ``isnan_after_softmax`` and ``where_after_softmax`` (softmaxes followed, before their MatMul,
    by ``IsNaN``/``Where``); ``softmax_after_add`` (softmaxes fed by an ``Add``, the bias add).
    """
    graph = proto.graph
    nodes = list(graph.node)  # the exporters inline their functions (optimize=True / TorchScript)
    consumers = _consumers(graph)
    producers = _producers(graph)
    types = _value_types(proto)
    counts = Counter(n.op_type for n in nodes)
    attention = [n for n in nodes if n.op_type == "Attention"]
    masked = [n for n in attention if len(n.input) > 3 and n.input[3] and types.get(n.input[3]) == 9]
    softmaxes = [n for n in nodes if n.op_type == "Softmax"]

    def downstream_ops(name: str, depth: int = 3) -> set[str]:
        seen: set[str] = set()
        frontier = [name]
        for _ in range(depth):
            nxt = []
            for value in frontier:
                for c in consumers.get(value, []):
                    seen.add(c.op_type)
                    if c.op_type != "MatMul":
                        nxt.extend(c.output)
            frontier = nxt
        return seen

    to_matmul = sum(all(c.op_type == "MatMul" for c in consumers.get(s.output[0], [])) for s in softmaxes)
    after = [downstream_ops(s.output[0]) for s in softmaxes]
    fed_by_add = sum(
        producers.get(s.input[0]) is not None and producers[s.input[0]].op_type == "Add" for s in softmaxes
    )
    return {
        "op_counts": dict(sorted(counts.items())),
        "attention_nodes": len(attention),
        "masked_attention_nodes": len(masked),
        "softmax_nodes": len(softmaxes),
        "softmax_to_matmul": int(to_matmul),
        "softmax_after_add": int(fed_by_add),
        "isnan_after_softmax": sum("IsNaN" in a for a in after),
        "where_after_softmax": sum("Where" in a for a in after),
    }


def _value_types(proto: Any) -> dict[str, int]:
    """ONNX element type of every value whose type is known (inputs, value_info after inference)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(proto, data_prop=False)
    except Exception:  # noqa: BLE001 - a report must not fail on an inference gap
        inferred = proto
    g = inferred.graph
    out: dict[str, int] = {}
    for v in list(g.input) + list(g.value_info) + list(g.output):
        out[v.name] = v.type.tensor_type.elem_type
    for init in g.initializer:
        out[init.name] = init.data_type
    return out


__all__ = [
    "DEFAULT_OPSET",
    "EXTERNAL_DATA_THRESHOLD",
    "FLAVOURS",
    "INPUT_NAMES",
    "METADATA_KEYS",
    "OUTPUT_NAME",
    "ExportError",
    "ExportResult",
    "ExportableUNet",
    "attention_report",
    "check_onnx",
    "example_size",
    "export_onnx",
    "is_conditional",
    "latent_multiple",
    "latent_scale",
    "name_dynamic_dims",
    "read_metadata",
    "save_proto",
]
