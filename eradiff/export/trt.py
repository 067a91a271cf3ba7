"""TensorRT engines from the exported ONNX UNet, and a TensorRT runtime backend.

:func:`build_engine` parses an ``.onnx`` file from :func:`eradiff.export.onnx.export_onnx` with
TensorRT's Python API and writes a serialized engine (``.plan``) plus a sidecar
``PLAN.json`` (the ONNX metadata, the optimisation profile, the TensorRT version), so that
:func:`load_trt_model` can rebuild the erasure model around it.

| option               | meaning                                                                      |
| -------------------- | ---------------------------------------------------------------------------- |
| ``fp16``             | fp16 kernels (default); an fp16-exported ONNX builds a strongly typed network |
| ``profile``          | min/opt/max (batch, height, width) in UNet-input cells (:func:`profile_from_sizes`) |
| ``timing_cache``     | file read before and written after the build (faster rebuilds)               |
| ``opt_level``        | ``IBuilderConfig.builder_optimization_level`` (0–5; TensorRT's default 3)     |
| layer report         | ``PLAN.layers.json``: the engine inspector's per-layer JSON, and a summary    |
|                      | saying whether attention fused (:func:`layer_summary`)                      |

TensorRT ≥ 10.14 imports the ``"trt"`` flavour's ONNX ``Attention`` nodes as fused
``IAttention`` layers; older versions need the ``"portable"`` flavour (MHA pattern fusion).
Without TensorRT or without a CUDA GPU every entry point raises :class:`TensorRTUnavailable`
with one line saying what is missing (the CLI exits with code 2).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from eradiff.errors import EraDiffError, ModelLoadError, first_line
from eradiff.export.artifact import GraphBackend
from eradiff.models.family import ErasureModel

MIN_TRT_FOR_ATTENTION = (10, 14)


class TensorRTUnavailable(EraDiffError):
    """TensorRT or a CUDA GPU is missing (the message says which)."""


def trt_unavailable_reason() -> str | None:
    """None when TensorRT can build and run engines here, else one line saying what is missing."""
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:  # ImportError, or the bindings' own errors when the libraries are missing
        return (
            f"TensorRT is not installed or does not load ({first_line(exc)}); it comes from NVIDIA's package index "
            "and needs a CUDA GPU machine"
        )
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible to torch; TensorRT engines need one"
    return None


def require_trt() -> Any:
    """Import and return ``tensorrt``, or raise :class:`TensorRTUnavailable`."""
    reason = trt_unavailable_reason()
    if reason is not None:
        raise TensorRTUnavailable(reason)
    import tensorrt

    return tensorrt


def trt_version() -> tuple[int, ...]:
    import tensorrt

    return tuple(int(p) for p in tensorrt.__version__.split(".")[:2] if p.isdigit())


@dataclass(frozen=True)
class Profile:
    """An optimisation profile in UNet-input cells: (batch, height, width) for min, opt and max."""

    min: tuple[int, int, int]
    opt: tuple[int, int, int]
    max: tuple[int, int, int]

    def __post_init__(self) -> None:
        for i, axis in enumerate(("batch", "height", "width")):
            if not 1 <= self.min[i] <= self.opt[i] <= self.max[i]:
                raise ValueError(
                    f"profile {axis} must satisfy 1 ≤ min ≤ opt ≤ max, got {self.min[i]}, {self.opt[i]}, {self.max[i]}"
                )

    def contains(self, batch: int, height: int, width: int) -> bool:
        v = (batch, height, width)
        return all(self.min[i] <= v[i] <= self.max[i] for i in range(3))


def _cells(pixels: int, scale: int, multiple: int) -> int:
    cells = -(-pixels // scale)
    return -(-cells // multiple) * multiple


def profile_from_sizes(
    sizes: Sequence[tuple[int, int]],
    *,
    batch: tuple[int, int, int] = (1, 1, 2),
    latent_scale: int,
    latent_multiple: int = 1,
    opt: tuple[int, int] | None = None,
) -> Profile:
    """The profile covering image sizes (height, width) in pixels.

    min/max are the element-wise extremes of ``sizes``, opt is ``opt`` or the first size; each is
    converted to UNet-input cells (⌈px / latent_scale⌉, rounded up to ``latent_multiple``).

    Args:
        sizes: one or more (height, width) in image pixels.
        batch: (min, opt, max) UNet batch (classifier-free guidance doubles it).
        latent_scale: image pixels per UNet-input cell (``eradiff.latent_scale`` metadata).
        latent_multiple: UNet-input sides must be multiples of this (``eradiff.latent_multiple``).
        opt: the size to tune for (default: ``sizes[0]``).
    """
    if not sizes:
        raise ValueError("sizes must hold at least one (height, width)")
    for h, w in sizes:
        if h < 1 or w < 1:
            raise ValueError(f"sizes must be positive, got {h}×{w}")

    def cells(hw: tuple[int, int]) -> tuple[int, int]:
        return _cells(hw[0], latent_scale, latent_multiple), _cells(hw[1], latent_scale, latent_multiple)

    lo = cells((min(h for h, _ in sizes), min(w for _, w in sizes)))
    hi = cells((max(h for h, _ in sizes), max(w for _, w in sizes)))
    mid = cells(opt if opt is not None else sizes[0])
    return Profile(min=(batch[0], *lo), opt=(batch[1], *mid), max=(batch[2], *hi))


def default_profile(metadata: dict[str, str], *, batch: tuple[int, int, int] = (1, 1, 2)) -> Profile:
    """Windows the erase pipeline sends: longer side = native size, shorter side down to a quarter."""
    native = int(metadata["eradiff.native_size"])
    small = max(int(metadata["eradiff.size_multiple"]), native // 4)
    return profile_from_sizes(
        [(small, small), (native, native)], batch=batch, opt=(native, native),
        latent_scale=int(metadata["eradiff.latent_scale"]), latent_multiple=int(metadata["eradiff.latent_multiple"]),
    )  # fmt: skip


@dataclass(frozen=True)
class EngineResult:
    """What :func:`build_engine` wrote and how the engine looks."""

    plan: Path
    sidecar: Path
    layers_file: Path
    profile: Profile
    fp16: bool
    seconds: float
    summary: dict[str, Any]


def _input_shapes(name: str, profile: Profile, dims: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """min/opt/max shapes of one network input (dims: its static shape with −1 where dynamic)."""
    out = []
    for b, h, w in (profile.min, profile.opt, profile.max):
        if name == "sample":
            out.append((b, dims[1], h, w))
        elif name == "timestep":
            out.append((b,))
        elif name == "sra_mask":
            out.append((b, h, w))
        elif name == "encoder_hidden_states":
            out.append((b, dims[1], dims[2]))
        else:
            raise ValueError(f"unexpected network input {name!r}")
    return tuple(out)


def build_engine(
    onnx_path: str | os.PathLike[str],
    plan_path: str | os.PathLike[str],
    *,
    profile: Profile | None = None,
    fp16: bool = True,
    timing_cache: str | os.PathLike[str] | None = None,
    opt_level: int | None = None,
    workspace_gib: float | None = None,
) -> EngineResult:
    """Build a TensorRT engine from an eradiff ONNX export.

    Args:
        onnx_path: ``.onnx`` from :func:`eradiff.export.onnx.export_onnx` (external data beside it).
        plan_path: destination engine file; ``PLAN.json`` and ``PLAN.layers.json`` go beside it.
        profile: optimisation profile (default :func:`default_profile` of the file's metadata).
        fp16: allow fp16 kernels (ignored for an fp16 export, which is built strongly typed).
        timing_cache: timing-cache file to read (if present) and write back.
        opt_level: builder optimisation level 0–5 (None: TensorRT's default).
        workspace_gib: workspace memory-pool limit (None: TensorRT's default).

    Raises:
        TensorRTUnavailable: no TensorRT or no CUDA GPU.
        ValueError: bad options, or an ONNX without eradiff metadata.
        RuntimeError: the parser or builder failed (their messages are included).
    """
    trt = require_trt()
    from eradiff.export.onnx import read_metadata

    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    if opt_level is not None and not 0 <= opt_level <= 5:
        raise ValueError(f"opt_level must be in 0–5, got {opt_level}")
    metadata = read_metadata(onnx_path)
    if "eradiff.family" not in metadata:
        raise ValueError(f"{str(onnx_path)!r} has no eradiff metadata; export it with `eradiff export --onnx`")
    if metadata.get("eradiff.flavour") == "trt" and trt_version() < MIN_TRT_FOR_ATTENTION:
        raise ValueError(
            f"TensorRT {trt.__version__} cannot import ONNX Attention nodes (needs ≥ 10.14); "
            "export with --flavour portable"
        )
    profile = profile or default_profile(metadata)
    strongly_typed = metadata.get("eradiff.dtype") == "float16"

    started = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    if fp16 and not strongly_typed:
        flag = getattr(trt.BuilderFlag, "FP16", None)
        if flag is None:
            raise ValueError(
                f"TensorRT {trt.__version__} has no weakly typed fp16 flag; export the ONNX with --fp16 (built "
                "strongly typed) or build with --fp32"
            )
        config.set_flag(flag)
    if opt_level is not None:
        config.builder_optimization_level = int(opt_level)
    if workspace_gib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * 2**30))
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    trt_profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        lo, mid, hi = _input_shapes(tensor.name, profile, tuple(tensor.shape))
        trt_profile.set_shape(tensor.name, lo, mid, hi)
    config.add_optimization_profile(trt_profile)
    cache_file = Path(timing_cache) if timing_cache is not None else None
    cache_bytes = cache_file.read_bytes() if cache_file is not None and cache_file.is_file() else b""
    config.set_timing_cache(config.create_timing_cache(cache_bytes), False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path.name} (see the log above)")
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    plan_path.write_bytes(bytes(plan))
    if cache_file is not None:
        cache_file.write_bytes(bytes(config.get_timing_cache().serialize()))
    seconds = time.perf_counter() - started

    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(bytes(plan))
    info = json.loads(engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON))
    layers_file = plan_path.with_name(plan_path.name + ".layers.json")
    layers_file.write_text(json.dumps(info, indent=1))
    summary = layer_summary(info)
    sidecar = plan_path.with_name(plan_path.name + ".json")
    sidecar.write_text(json.dumps({
        "metadata": metadata, "profile": asdict(profile), "fp16": bool(fp16 or strongly_typed),
        "tensorrt": trt.__version__, "onnx": onnx_path.name, "opt_level": opt_level, "layer_summary": summary,
        "build_seconds": round(seconds, 2),
    }, indent=1))  # fmt: skip
    return EngineResult(plan=plan_path, sidecar=sidecar, layers_file=layers_file, profile=profile,
                        fp16=bool(fp16 or strongly_typed), seconds=seconds, summary=summary)  # fmt: skip


_ATTENTION_WORDS = ("attention", "mha", "fmha", "_gemm_mha", "flash")


def layer_summary(info: dict[str, Any]) -> dict[str, Any]:
    """Summarise the engine inspector's JSON: layer count, layer types, and whether attention fused.

    ``fused_attention_layers`` counts layers whose type or name says attention/MHA (TensorRT's
    ``IAttention`` and MHA kernels); ``softmax_layers`` counts stand-alone softmax layers, which
    mean that some attention was *not* fused. ``attention_fused`` is True when the first is
    non-zero and the second is zero.
    """
    layers = info.get("Layers", [])
    types: Counter[str] = Counter()
    fused, softmax = [], []
    for layer in layers:
        if isinstance(layer, str):  # ONELINE format fallback
            name, kind = layer, ""
        else:
            name, kind = str(layer.get("Name", "")), str(layer.get("LayerType", ""))
        types[kind or "?"] += 1
        text = f"{kind} {name}".lower()
        if any(w in text for w in _ATTENTION_WORDS):
            fused.append(name)
        elif "softmax" in text:
            softmax.append(name)
    return {
        "layers": len(layers),
        "layer_types": dict(types.most_common()),
        "fused_attention_layers": len(fused),
        "softmax_layers": len(softmax),
        "attention_fused": bool(fused) and not softmax,
        "examples": {"attention": fused[:5], "softmax": softmax[:5]},
    }


_TORCH_DTYPES = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "BOOL": torch.bool,
                 "INT32": torch.int32, "INT64": torch.int64, "INT8": torch.int8}  # fmt: skip


class TrtUNetBackend(GraphBackend):
    """A TensorRT engine as a :class:`~eradiff.models.family.UNetBackend`; torch CUDA tensors are
    the I/O buffers (no host copies), run on torch's current CUDA stream.

    Args:
        plan: the engine file from :func:`build_engine`.
        metadata: the eradiff metadata (default: read from ``PLAN.json``).
    """

    name = "trt"
    made, rebuild = "built", "rebuild with --prompt-input"

    def __init__(self, plan: str | os.PathLike[str], *, metadata: dict[str, str] | None = None) -> None:
        trt = require_trt()
        self.plan = self.artifact = Path(plan)
        self.trt = trt
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(self.plan.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not deserialize {self.plan.name} (built by another TensorRT version?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = [n for n in names if is_input[n]]
        self.output_name = next(n for n in names if not is_input[n])
        self.dtypes = {n: _TORCH_DTYPES[self.engine.get_tensor_dtype(n).name] for n in names}
        self.has_sra = "sra_mask" in self.input_names
        self.has_prompt = "encoder_hidden_states" in self.input_names
        self.metadata = metadata or {}
        self.prompt_reference: Tensor | None = None
        self.device = torch.device("cuda")

    def run(self, feed: dict[str, Tensor]) -> Tensor:
        buffers = {}
        for name in self.input_names:
            x = feed[name].to(self.device, self.dtypes[name]).contiguous()
            buffers[name] = x
            if not self.context.set_input_shape(name, tuple(x.shape)):
                raise ValueError(
                    f"input {name} of shape {tuple(x.shape)} is outside the engine's optimisation profile; rebuild "
                    "the engine with a wider --min/--max"
                )
            self.context.set_tensor_address(name, x.data_ptr())
        out = torch.empty(tuple(self.context.get_tensor_shape(self.output_name)), dtype=self.dtypes[self.output_name],
                          device=self.device)  # fmt: skip
        self.context.set_tensor_address(self.output_name, out.data_ptr())
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"TensorRT execution of {self.plan.name} failed")
        return out


def load_trt_model(
    plan: str | os.PathLike[str],
    *,
    base: str | os.PathLike[str] | None = None,
    offline: bool = False,
) -> ErasureModel:
    """An erasure model whose UNet runs in a TensorRT engine (the rest of the pipeline on CUDA).

    Raises:
        TensorRTUnavailable: no TensorRT or no CUDA GPU.
        ModelLoadError: a missing plan or sidecar, or malformed metadata.
    """
    from eradiff.export.artifact import model_around_backend, read_artifact_metadata

    plan = Path(plan)
    if not plan.is_file():
        raise ModelLoadError(f"TensorRT engine {str(plan)!r}: no such file")
    sidecar = plan.with_name(plan.name + ".json")
    if not sidecar.is_file():
        raise ModelLoadError(
            f"TensorRT engine {str(plan)!r} has no {sidecar.name} beside it (written by eradiff export)"
        )
    try:
        metadata = json.loads(sidecar.read_text())["metadata"]
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{sidecar.name} is not a valid eradiff engine description") from exc
    require_trt()
    backend = TrtUNetBackend(plan, metadata=metadata)
    meta = read_artifact_metadata(metadata, repr(str(plan)))
    model = model_around_backend(meta, backend, where=f"TensorRT ({plan.name})", base=base, offline=offline)
    dtype = torch.float16 if backend.dtypes["sample"] == torch.float16 else torch.float32
    model.to("cuda", dtype)
    if not backend.has_prompt and hasattr(model, "encode_prompt"):
        backend.prompt_reference = model.encode_prompt("")
    return model


__all__ = [
    "MIN_TRT_FOR_ATTENTION",
    "EngineResult",
    "Profile",
    "TensorRTUnavailable",
    "TrtUNetBackend",
    "build_engine",
    "default_profile",
    "layer_summary",
    "load_trt_model",
    "profile_from_sizes",
    "require_trt",
    "trt_unavailable_reason",
]
