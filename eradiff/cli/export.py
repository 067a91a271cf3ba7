"""``eradiff export``: write an ONNX graph of a model's UNet (SRA inside), or a TensorRT engine.

    eradiff export --onnx out.onnx [--model M] [--flavour portable|trt] [--fp16] [--opset N] [--no-sra]
    eradiff export --trt out.plan [--onnx in.onnx | --model M] [--min HxW] [--opt HxW] [--max HxW]
                   [--batch MIN,OPT,MAX] [--fp16/--fp32] [--opt-level N] [--timing-cache FILE]

With ``--trt``, ``--onnx`` names an existing ONNX file to build from; without it the model
(``--model``, default: the built-in one) is exported first to a temporary file. Sizes are image
pixels (``512`` or ``512x768`` = height × width). Messages go to stderr, ``--json`` prints a
report on stdout. Errors are one line: exit 2 for invalid options and for a missing TensorRT or
GPU, 1 for everything else.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import typer

from eradiff.cli._common import CLIError, fail
from eradiff.cli.hub import ModelSpecError, check_model_spec
from eradiff.cli.threads import apply_threads, check_threads, threads_option

FLAVOUR_CHOICES = ("auto", "trt", "portable")


def parse_size(text: str) -> tuple[int, int]:
    """``"512"`` → (512, 512); ``"512x768"`` → (512, 768) (height × width, pixels)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) < 1:
        raise CLIError(f"size {text!r} is not valid; write N or HxW in pixels, e.g. 512 or 512x768", 2)
    return (values[0], values[-1])


def parse_batch(text: str) -> tuple[int, int, int]:
    """``"1,1,2"`` → (1, 1, 2); ``"2"`` → (2, 2, 2)."""
    try:
        values = [int(p) for p in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 3) or min(values) < 1:
        raise CLIError(f"batch {text!r} is not valid; write MIN,OPT,MAX (e.g. 1,1,2) or one number", 2)
    return (values[0], values[len(values) // 2], values[-1])


def export_command(
    onnx: Path | None = typer.Option(None, "--onnx", help="ONNX file to write (with --trt: to build from)."),
    trt: Path | None = typer.Option(None, "--trt", help="TensorRT engine (.plan) to build."),
    model: str | None = typer.Option(
        None, "--model", "-m", help="'default', a diffusers SD2-inpainting folder, a .safetensors file or a hub id."
    ),
    flavour: str = typer.Option(
        "auto",
        "--flavour",
        help="portable (opset 18, onnxruntime/any TensorRT) | trt (opset 23 Attention, "
        "TensorRT ≥ 10.14) | auto (trt with --trt, else portable).",
    ),  # fmt: skip
    fp16: bool | None = typer.Option(
        None, "--fp16/--fp32", help="ONNX: fp16 weights (default fp32). TensorRT: fp16 kernels (default on)."
    ),
    opset: int | None = typer.Option(None, "--opset", help="ONNX opset (trt: 23; portable: 17 or 18)."),
    no_sra: bool = typer.Option(False, "--no-sra", help="Export plain attention (no sra_mask input)."),
    prompt_input: bool = typer.Option(
        False, "--prompt-input", help="Latent models: take the prompt embedding as an input (default: empty prompt)."
    ),
    external_data: str = typer.Option("auto", "--external-data", help="auto | always | never (weights in FILE.data)."),
    min_size: str | None = typer.Option(None, "--min", help="TensorRT profile: smallest image, HxW pixels."),
    opt_size: str | None = typer.Option(None, "--opt", help="TensorRT profile: size to tune for, HxW pixels."),
    max_size: str | None = typer.Option(None, "--max", help="TensorRT profile: largest image, HxW pixels."),
    batch: str = typer.Option("1,1,2", "--batch", help="TensorRT profile: UNet batch MIN,OPT,MAX (guidance doubles)."),
    opt_level: int | None = typer.Option(None, "--opt-level", help="TensorRT builder optimisation level 0–5."),
    timing_cache: Path | None = typer.Option(None, "--timing-cache", help="TensorRT timing-cache file (read/write)."),
    offline: bool = typer.Option(False, "--offline", help="Never contact the Hugging Face hub."),
    json_out: bool = typer.Option(False, "--json", help="Print a machine-readable report on stdout."),
    threads: int | None = threads_option(),
) -> None:
    """Export a model's UNet to ONNX (Self-Rectifying Attention in the graph) or build a TensorRT engine."""
    args = dict(
        onnx=onnx,
        trt=trt,
        model=model,
        flavour=flavour,
        fp16=fp16,
        opset=opset,
        no_sra=no_sra,
        prompt_input=prompt_input,
        external_data=external_data,
        min_size=min_size,
        opt_size=opt_size,
        max_size=max_size,
        batch=batch,
        opt_level=opt_level,
        timing_cache=timing_cache,
        offline=offline,
        json_out=json_out,
        threads=threads,
    )
    try:
        report = _run(**args)
    except CLIError as exc:
        fail(str(exc), exc.code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as exc:
        from eradiff.errors import EraDiffError, first_line
        from eradiff.export.trt import TensorRTUnavailable

        if isinstance(exc, TensorRTUnavailable):
            fail(str(exc), 2)
        if isinstance(exc, EraDiffError):
            fail(first_line(exc), 1)
        if isinstance(exc, ValueError):
            fail(first_line(exc), 2)
        fail(f"unexpected {type(exc).__name__}: {first_line(exc)}", 1)
    if json_out:
        print(json.dumps(report, indent=2, default=str))


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _run(**args) -> dict:
    onnx_path, plan_path = args["onnx"], args["trt"]
    if onnx_path is None and plan_path is None:
        raise CLIError("say what to write: --onnx FILE.onnx and/or --trt FILE.plan", 2)
    if args["flavour"] not in FLAVOUR_CHOICES:
        raise CLIError(f"flavour {args['flavour']!r} is not valid; choose one of {', '.join(FLAVOUR_CHOICES)}", 2)
    if args["external_data"] not in ("auto", "always", "never"):
        raise CLIError(f"external-data {args['external_data']!r} is not valid; choose auto, always or never", 2)
    profile_args = (args["min_size"], args["opt_size"], args["max_size"], args["opt_level"], args["timing_cache"])
    if plan_path is None and any(a is not None for a in profile_args):
        raise CLIError("--min/--opt/--max/--opt-level/--timing-cache apply to --trt only", 2)
    try:
        check_threads(args["threads"])
        args["offline"] = check_model_spec(args["model"], offline=args["offline"])
    except ModelSpecError as exc:
        raise CLIError(str(exc), 1) from exc
    except ValueError as exc:
        raise CLIError(str(exc), 2) from exc
    apply_threads(args["threads"])
    if plan_path is None:
        return {"onnx": _export(onnx_path, args)}
    from eradiff.export.trt import require_trt

    require_trt()  # before any slow export: a missing TensorRT or GPU is exit 2 at once
    report: dict = {}
    if onnx_path is not None and onnx_path.is_file() and args["model"] is None:
        report["trt"] = _build(onnx_path, plan_path, args)
        return report
    with tempfile.TemporaryDirectory(prefix="eradiff-export-") as tmp:
        source = onnx_path or Path(tmp) / "unet.onnx"
        report["onnx"] = _export(source, {**args, "fp16": False}, for_trt=True)
        report["trt"] = _build(source, plan_path, args)
    return report


def _flavour(args: dict, *, for_trt: bool) -> str:
    if args["flavour"] != "auto":
        return args["flavour"]
    if not for_trt:
        return "portable"
    from eradiff.export.trt import MIN_TRT_FOR_ATTENTION, trt_version

    return "trt" if trt_version() >= MIN_TRT_FOR_ATTENTION else "portable"


def _export(path: Path, args: dict, *, for_trt: bool = False) -> dict:
    from eradiff.export.onnx import OPSETS, export_onnx
    from eradiff.models.loading import load_model

    if path.suffix.lower() != ".onnx":
        raise CLIError(f"ONNX output {str(path)!r} must end in .onnx", 2)
    flavour = _flavour(args, for_trt=for_trt)
    lo, hi = OPSETS[flavour]
    if args["opset"] is not None and not lo <= args["opset"] <= hi:
        raise CLIError(f"opset={args['opset']} is not valid for the {flavour!r} flavour; choose {lo}–{hi}", 2)
    t0 = time.perf_counter()
    _say(f"loading model {args['model'] or 'default'} …")
    model = load_model(args["model"], offline=args["offline"])
    _say(f"exporting {model.name} ({model.family} family) → {path} [{flavour} flavour] …")
    result = export_onnx(
        model, path, flavour=flavour, opset=args["opset"], fp16=bool(args["fp16"]), sra=not args["no_sra"],
        prompt_input=args["prompt_input"], external_data=args["external_data"],
    )  # fmt: skip
    g = result.graph
    if flavour == "trt":
        shape = f"{g['masked_attention_nodes']} masked Attention nodes"
    else:
        isnan = g["isnan_after_softmax"]
        shape = f"{g['softmax_after_add']} MatMul→Add→Softmax→MatMul chains, IsNaN after softmax: {isnan}"
    _say(f"wrote {result.path} (opset {result.opset}; {result.self_attention_layers} self-attention layers with SRA"
         f"{'' if not args['no_sra'] else ' off'}; {shape}) in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    return {
        "path": str(result.path), "data_path": None if result.data_path is None else str(result.data_path),
        "flavour": result.flavour, "opset": result.opset, "inputs": list(result.inputs),
        "self_attention_layers": result.self_attention_layers, "graph": g, "metadata": result.metadata,
        "seconds": round(time.perf_counter() - t0, 2),
    }  # fmt: skip


def _build(source: Path, plan: Path, args: dict) -> dict:
    from eradiff.export.onnx import read_metadata
    from eradiff.export.trt import build_engine, default_profile, profile_from_sizes

    if not source.is_file():
        raise CLIError(f"ONNX input {str(source)!r}: no such file", 2)
    metadata = read_metadata(source)
    if "eradiff.family" not in metadata:
        raise CLIError(f"{str(source)!r} has no eradiff metadata; export it with `eradiff export --onnx`", 1)
    batch = parse_batch(args["batch"])
    sizes = [parse_size(s) for s in (args["min_size"], args["opt_size"], args["max_size"]) if s is not None]
    if sizes:
        opt = parse_size(args["opt_size"]) if args["opt_size"] else None
        profile = profile_from_sizes(
            sizes, batch=batch, opt=opt, latent_scale=int(metadata["eradiff.latent_scale"]),
            latent_multiple=int(metadata["eradiff.latent_multiple"]),
        )  # fmt: skip
    else:
        profile = default_profile(metadata, batch=batch)
    fp16 = True if args["fp16"] is None else bool(args["fp16"])
    _say(f"building TensorRT engine {plan} from {source.name} (fp16={fp16}, profile {profile}) …")
    result = build_engine(source, plan, profile=profile, fp16=fp16, timing_cache=args["timing_cache"],
                          opt_level=args["opt_level"])  # fmt: skip
    s = result.summary
    _say(f"wrote {result.plan} in {result.seconds:.1f} s: {s['layers']} layers, {s['fused_attention_layers']} fused "
         f"attention, {s['softmax_layers']} stand-alone softmax (attention fused: {s['attention_fused']}); "
         f"layer report {result.layers_file}")  # fmt: skip
    return {"plan": str(result.plan), "sidecar": str(result.sidecar), "layers_file": str(result.layers_file),
            "profile": {"min": result.profile.min, "opt": result.profile.opt, "max": result.profile.max},
            "fp16": result.fp16, "seconds": round(result.seconds, 2), "summary": s}  # fmt: skip
