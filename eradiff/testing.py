"""Tiny randomly initialised models for tests and benchmarks (offline, seconds on a CPU).

| function                    | what                                                                  |
| --------------------------- | --------------------------------------------------------------------- |
| ``tiny_clip_tokenizer``     | a ``CLIPTokenizer`` from a letters-only vocab and an empty merge list |
| ``tiny_sd2_unet_config``    | the UNet2DConditionModel configuration of that folder                 |
| ``tiny_sd2_inpaint_folder`` | an SD2-inpainting-architecture diffusers folder (``save_pretrained``) |
| ``tiny_pixel_config``       | a small :class:`~eradiff.models.family.PixelModelConfig`              |
| ``tiny_pixel_file``         | that model, randomly initialised, saved as one safetensors file       |
| ``sd2_unet_config``         | the SD2 UNet configuration at a chosen width (for benchmarks)         |
| ``assert_one_line_error``   | a CLI result failed with one ``error:`` line, the code, no traceback   |

The folder is written by diffusers' own ``StableDiffusionInpaintPipeline.save_pretrained``, so
loading it exercises the same code path a real Stable Diffusion 2 inpainting folder takes.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import torch

from eradiff.models.family import PixelModelConfig


def tiny_clip_tokenizer(folder: str | Path) -> Any:
    """Write ``vocab.json`` + ``merges.txt`` (``#version: 0.2`` only) to ``folder`` and load them."""
    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["<|startoftext|>", "<|endoftext|>", "!"]
    for ch in string.ascii_lowercase:
        tokens += [ch, ch + "</w>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(
        vocab_file=str(folder / "vocab.json"),
        merges_file=str(folder / "merges.txt"),
        pad_token="!",
        model_max_length=77,
    )


def tiny_sd2_unet_config(*, sample_size: int = 16) -> dict[str, Any]:
    """A tiny SD2-inpainting UNet2DConditionModel: 9 input channels, block_out_channels (32, 64),
    self- and cross-attention (32-d, linear projections) at both levels."""
    return dict(
        sample_size=sample_size, in_channels=9, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=(2, 4), use_linear_projection=True,
    )  # fmt: skip


def tiny_sd2_inpaint_folder(folder: str | Path, *, seed: int = 0, sample_size: int = 16) -> Path:
    """Build a randomly initialised SD2-inpainting-architecture pipeline and ``save_pretrained`` it.

    UNet2DConditionModel (9 input channels, block_out_channels (32, 64), cross-attention at both
    levels), AutoencoderKL (32, 64; 2× downsampling), CLIPTextModel (hidden 32, 2 layers), the
    tiny tokenizer and a DDIMScheduler with SD2's settings.

    Args:
        folder: destination (created).
        seed: torch seed for the random weights.
        sample_size: UNet sample size in latents (native size = 2 × this in pixels).

    Returns:
        The folder.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**tiny_sd2_unet_config(sample_size=sample_size))
    vae = AutoencoderKL(
        block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), sample_size=2 * sample_size,
    )  # fmt: skip
    tokenizer = tiny_clip_tokenizer(folder / "_tokenizer_src")
    text_config = CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=2, hidden_size=32, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, vocab_size=len(tokenizer), max_position_embeddings=77, projection_dim=32,
    )  # fmt: skip
    text_encoder = CLIPTextModel(text_config)
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
        steps_offset=1, prediction_type="epsilon",
    )  # fmt: skip
    pipe = StableDiffusionInpaintPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.save_pretrained(folder, safe_serialization=True)
    for f in (folder / "_tokenizer_src").iterdir():
        f.unlink()
    (folder / "_tokenizer_src").rmdir()
    return folder


def tiny_pixel_config(
    *, factor: int = 2, native_size: int = 32, fill: str = "telea", space: str = "pixel", residual_scale: float = 1.0
) -> PixelModelConfig:
    """A small pixel-family config: UNet2DModel (32, 64) with attention at the lower level."""
    c = 3 * factor * factor
    unet = dict(
        sample_size=native_size // factor, in_channels=c + factor * factor + c, out_channels=c,
        block_out_channels=[32, 64], down_block_types=["DownBlock2D", "AttnDownBlock2D"],
        up_block_types=["AttnUpBlock2D", "UpBlock2D"], layers_per_block=1, attention_head_dim=8, norm_num_groups=8,
    )  # fmt: skip
    return PixelModelConfig(
        unet=unet,
        factor=factor,
        fill=fill,
        space=space,
        residual_scale=residual_scale,
        native_size=native_size,
        name="tiny-pixel",
    )


def tiny_pixel_file(path: str | Path, *, seed: int = 0, **config: Any) -> Path:
    """Save a randomly initialised tiny pixel model (:func:`tiny_pixel_config`) as one safetensors file."""
    from eradiff.models.family import PixelInpaintModel
    from eradiff.models.loading import save_pixel_model

    torch.manual_seed(seed)
    save_pixel_model(PixelInpaintModel(tiny_pixel_config(**config)), path)
    return Path(path)


def cached(folder: Path, build: Any) -> Path:
    """Build ``folder`` with ``build(folder)`` unless it is already complete (a ``.done`` marker).

    Test fixtures in several directories share one copy per test session this way.
    """
    done = folder.parent / f".{folder.name}.done"
    if not done.exists():
        build(folder)
        done.touch()
    return folder


def sd2_unet_config(*, width: int = 320, sample_size: int = 64, in_channels: int = 9) -> dict[str, Any]:
    """The Stable Diffusion 2 UNet configuration; ``width`` = 320 is the real model (865 M parameters).

    A smaller width keeps the architecture (4 levels, 2 layers, 64-channel heads, linear
    projections, 1024-d cross-attention) and scales channels as (1, 2, 4, 4) × width.
    """
    if width % 64 != 0:
        raise ValueError(f"width must be a multiple of 64 (head size), got {width}")
    blocks = (width, 2 * width, 4 * width, 4 * width)
    return dict(
        sample_size=sample_size, in_channels=in_channels, out_channels=4, block_out_channels=blocks,
        layers_per_block=2, attention_head_dim=[c // 64 for c in blocks], cross_attention_dim=1024,
        use_linear_projection=True,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    )  # fmt: skip


__all__ = [
    "cached",
    "sd2_unet_config",
    "tiny_clip_tokenizer",
    "tiny_pixel_config",
    "tiny_pixel_file",
    "tiny_sd2_inpaint_folder",
    "tiny_sd2_unet_config",
]


def assert_one_line_error(result: Any, code: int = 1, match: str = "") -> None:
    """A typer/click ``CliRunner`` result exited with ``code`` and exactly one ``error: …`` line
    on stderr that contains ``match``, and no traceback anywhere."""
    assert result.exit_code == code, (result.exit_code, result.stderr, result.stdout)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert match in lines[0], lines[0]
