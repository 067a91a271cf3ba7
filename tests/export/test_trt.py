"""TensorRT: profile arithmetic and the layer report run everywhere; engine builds and parity
need TensorRT ≥ 10.14 and a CUDA GPU and skip (with the reason) without them."""

from __future__ import annotations

import json

import pytest
import torch

from eradiff.export import load_backend_model
from eradiff.export.trt import (
    Profile,
    TensorRTUnavailable,
    build_engine,
    default_profile,
    layer_summary,
    load_trt_model,
    profile_from_sizes,
    trt_unavailable_reason,
)

REASON = trt_unavailable_reason()
needs_trt = pytest.mark.skipif(REASON is not None, reason=f"TensorRT engine tests skipped: {REASON}")


def test_profile_from_sizes_converts_pixels_to_cells():
    p = profile_from_sizes([(512, 384), (256, 768)], batch=(1, 1, 2), latent_scale=8)
    assert p == Profile(min=(1, 32, 48), opt=(1, 64, 48), max=(2, 64, 96))
    # pixel family: unshuffle 4, UNet sides multiples of 8 cells → rounded up
    p = profile_from_sizes([(250, 250)], latent_scale=4, latent_multiple=8)
    assert p.min == (1, 64, 64) and p.max == (2, 64, 64)
    assert p.contains(1, 64, 64) and not p.contains(3, 64, 64)


def test_profile_checks_its_order():
    with pytest.raises(ValueError, match="profile height must satisfy 1 ≤ min ≤ opt ≤ max, got 8, 4, 16"):
        Profile(min=(1, 8, 8), opt=(1, 4, 8), max=(1, 16, 16))
    with pytest.raises(ValueError, match="sizes must hold at least one"):
        profile_from_sizes([], latent_scale=8)


def test_default_profile_covers_the_pipeline_windows():
    meta = {"eradiff.native_size": "256", "eradiff.size_multiple": "32", "eradiff.latent_scale": "4",
            "eradiff.latent_multiple": "8"}  # fmt: skip
    p = default_profile(meta)
    assert p.max == (2, 64, 64) and p.opt == (1, 64, 64) and p.min == (1, 16, 16)


def test_layer_summary_reads_the_inspector_json():
    fused = {"Layers": [{"Name": "conv1", "LayerType": "CaskConvolution"},
                        {"Name": "attn/_gemm_mha_v2", "LayerType": "kgen"},
                        {"Name": "unet.attn1 Attention", "LayerType": "Attention"}]}  # fmt: skip
    s = layer_summary(fused)
    assert s["layers"] == 3 and s["fused_attention_layers"] == 2 and s["attention_fused"]
    unfused = {"Layers": [{"Name": "MatMul_1", "LayerType": "MatrixMultiply"},
                          {"Name": "Softmax_3", "LayerType": "SoftMax"}]}  # fmt: skip
    s = layer_summary(unfused)
    assert s["softmax_layers"] == 1 and not s["attention_fused"]


@pytest.mark.skipif(REASON is None, reason="TensorRT and a CUDA GPU are present")
def test_missing_tensorrt_is_a_clear_exception(tmp_path):
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"\0")
    (tmp_path / "m.plan.json").write_text(json.dumps({"metadata": {}}))
    for call in (lambda: load_trt_model(plan), lambda: load_backend_model(plan, "trt"),
                 lambda: build_engine(tmp_path / "m.onnx", plan)):  # fmt: skip
        with pytest.raises(TensorRTUnavailable) as info:
            call()
        assert "\n" not in str(info.value) and ("TensorRT" in str(info.value) or "CUDA" in str(info.value))


@needs_trt
@pytest.mark.gpu
@pytest.mark.parametrize(("flavour", "opset"), [("trt", 23), ("portable", 18)])
def test_engine_matches_torch_on_gpu(exports, pixel_model, tmp_path, flavour, opset):
    """fp32 engine vs torch eager on CUDA (TF32 off on both sides): same tolerance as onnxruntime
    ×10 for TensorRT's tactic choices; fp16 engine vs fp32 torch within fp16 precision."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    onnx_path = exports.get("pixel", flavour, opset).path
    meta_profile = Profile(min=(1, 2, 2), opt=(2, 16, 16), max=(4, 32, 32))
    for fp16, tol in ((False, 1e-3), (True, 3e-2)):
        plan = tmp_path / f"{flavour}-{fp16}.plan"
        result = build_engine(onnx_path, plan, profile=meta_profile, fp16=fp16, timing_cache=tmp_path / "cache")
        assert result.layers_file.is_file() and (tmp_path / "cache").is_file()
        if flavour == "trt":
            assert result.summary["fused_attention_layers"] > 0, result.summary
        model = load_trt_model(plan)
        unet = pixel_model.unet.to("cuda")
        try:
            for b, h, w in [(1, 8, 8), (2, 6, 14), (4, 32, 32)]:
                x = torch.randn(b, unet.config.in_channels, h, w, device="cuda")
                t = torch.randint(0, 1000, (b,), device="cuda")
                mask = torch.rand(b, h, w, device="cuda") < 0.3
                with torch.no_grad():
                    ref = pixel_model.backend(x, t, mask, sra=True, encoder_hidden_states=None)
                out = model.backend(x, t, mask, sra=True, encoder_hidden_states=None)
                torch.testing.assert_close(out.float(), ref.float(), atol=tol, rtol=tol)
            with pytest.raises(ValueError, match="outside the engine's optimisation profile"):
                x = torch.randn(5, unet.config.in_channels, 8, 8, device="cuda")
                model.backend(x, torch.zeros(5, device="cuda"), None, sra=False, encoder_hidden_states=None)
        finally:
            pixel_model.unet.to("cpu")
