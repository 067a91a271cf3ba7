"""SRA as a drop-in diffusers processor, checked the way diffusers' own UNet tests check models.

What diffusers' suite does to a UNet is done here with SRA installed, so a diffusers upgrade
that breaks SRA fails in this file first: processors rebuilt as ``type(processor)()`` (IP-Adapter
loading), calls that put another processor on the self-attention layers (refused, naming the
call), LoRA load and fuse, ``attn_processors``/``set_attn_processor`` round trips, save/load,
copies, feed-forward chunking, gradient checkpointing, determinism, ``torch.compile``, and the
``cross_attention_kwargs={"sra_mask": m}`` route inside a stock ``StableDiffusionInpaintPipeline``.

"SRA acts" is checked as in ``test_sra_processor.py``: with a non-empty mask the output differs
from SRA off, and with an empty mask it is bit-identical to the same model without SRA.

The supported diffusers range is stated in pyproject.toml; .ci/run runs this file on its lowest
version as well.
"""

from __future__ import annotations

import copy
import logging
import os

import pytest
import torch
from diffusers import StableDiffusionInpaintPipeline, UNet2DConditionModel
from diffusers.models.attention_processor import (
    Attention,
    AttnProcessor2_0,
    IPAdapterAttnProcessor2_0,
)
from diffusers.models.embeddings import ImageProjection

from eradiff.core import downsample_mask
from eradiff.models.sra import SRAAttnProcessor, install_sra, self_attention_names
from eradiff.testing import tiny_sd2_unet_config

IGNORED = "are not expected by"  # diffusers' warning for a cross_attention_kwargs key a processor lacks


def tiny_unet(seed: int = 0) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    return UNet2DConditionModel(**tiny_sd2_unet_config()).eval()


def inputs(b: int = 1, h: int = 16, w: int = 16, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 9, h, w, generator=g), torch.randint(0, 1000, (b,), generator=g), torch.randn(b, 7, 32)


def box(b: int = 1, h: int = 16, w: int = 16) -> torch.Tensor:
    M = torch.zeros(b, h, w, dtype=torch.bool)
    M[:, h // 5 : h // 2 + 2, w // 4 : 3 * w // 4] = True
    return M


def forward(unet, x, t, emb, sra_mask=None, **kwargs) -> torch.Tensor:
    """One UNet call, the mask (if any) passed the stock diffusers way."""
    if sra_mask is not None:
        kwargs["cross_attention_kwargs"] = {"sra_mask": sra_mask}
    with torch.no_grad():
        return unet(x, t, encoder_hidden_states=emb, **kwargs).sample


def assert_sra_acts(unet, reference, x, t, emb, M, **kwargs) -> torch.Tensor:
    """Non-empty mask: differs from SRA off. Empty mask: bit-identical to ``reference`` (no SRA)."""
    on = forward(unet, x, t, emb, M, **kwargs)
    off = forward(unet, x, t, emb, **kwargs)
    assert (on - off).abs().max() > 1e-4, "SRA with a non-empty mask changes the output"
    assert torch.equal(forward(unet, x, t, emb, torch.zeros_like(M), **kwargs), forward(reference, x, t, emb, **kwargs))
    return on


def self_attention_processors(unet) -> dict[str, object]:
    names = {f"{n}.processor" for n in self_attention_names(unet)}
    return {k: p for k, p in unet.attn_processors.items() if k in names}


class Records(logging.Handler):
    """Collects what one diffusers logger emits (after its filters)."""

    def __init__(self, logger_name: str) -> None:
        super().__init__()
        self.logger = logging.getLogger(logger_name)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> Records:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        self.logger.removeHandler(self)


# Processors that diffusers rebuilds: IP-Adapter -------------------------------------------------


def test_processor_built_without_arguments_follows_the_handle():
    unet, stock = tiny_unet(), tiny_unet()
    state = install_sra(unet)
    x, t, emb = inputs()
    M = box()
    before = forward(unet, x, t, emb, M)
    unet.set_attn_processor({k: type(p)() for k, p in unet.attn_processors.items()})  # what loaders/unet.py does
    assert torch.equal(forward(unet, x, t, emb, M), before)
    with state.use(M):
        assert torch.equal(forward(unet, x, t, emb), before), "the handle drives the rebuilt processors"
    with state.use(M, enabled=False):
        assert torch.equal(forward(unet, x, t, emb), forward(stock, x, t, emb))


def test_processor_on_a_layer_without_sra_says_what_to_do():
    unet = tiny_unet()
    selfs = self_attention_processors(unet)
    unet.set_attn_processor({k: SRAAttnProcessor() if k in selfs else p for k, p in unet.attn_processors.items()})
    with pytest.raises(RuntimeError, match=r"install_sra"):
        forward(unet, *inputs())


def ip_adapter_state_dict(unet, seed: int = 3) -> dict[str, dict[str, torch.Tensor]]:
    """Random IP-Adapter weights in the layout of the released checkpoints (as diffusers' tests build them)."""
    torch.manual_seed(seed)
    dim = unet.config.cross_attention_dim
    ip_adapter, key_id = {}, 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        attn = unet.get_submodule(name.removesuffix(".processor"))
        ip_adapter[f"{key_id}.to_k_ip.weight"] = 0.2 * torch.randn(attn.to_k.out_features, dim)
        ip_adapter[f"{key_id}.to_v_ip.weight"] = 0.2 * torch.randn(attn.to_v.out_features, dim)
        key_id += 2
    proj = ImageProjection(cross_attention_dim=dim, image_embed_dim=dim, num_image_text_embeds=4).state_dict()
    image_proj = {"proj.weight": proj["image_embeds.weight"], "proj.bias": proj["image_embeds.bias"],
                  "norm.weight": proj["norm.weight"], "norm.bias": proj["norm.bias"]}  # fmt: skip
    return {"image_proj": image_proj, "ip_adapter": ip_adapter}


def test_ip_adapter_load_keeps_sra():
    unet, stock = tiny_unet(), tiny_unet()
    state = install_sra(unet)
    x, t, emb = inputs()
    M = box()
    plain = forward(stock, x, t, emb)
    old = self_attention_processors(unet)
    weights = ip_adapter_state_dict(unet)
    unet._load_ip_adapter_weights([weights])  # what pipe.load_ip_adapter(...) calls
    stock._load_ip_adapter_weights([weights])

    new = self_attention_processors(unet)
    assert all(type(p) is SRAAttnProcessor and p is not old[k] for k, p in new.items()), "rebuilt by type(p)()"
    assert all(type(p) is IPAdapterAttnProcessor2_0 for k, p in unet.attn_processors.items() if k not in new)
    image = {"added_cond_kwargs": {"image_embeds": [torch.randn(1, 1, 32, generator=torch.Generator().manual_seed(4))]}}
    assert (forward(stock, x, t, emb, **image) - plain).abs().max() > 1e-3, "the IP-Adapter acts"
    on = assert_sra_acts(unet, stock, x, t, emb, M, **image)
    with state.use(M):
        assert torch.equal(forward(unet, x, t, emb, **image), on), "the handle from before the load still drives SRA"


# Calls that put another processor on the self-attention layers ----------------------------------


def test_set_default_attn_processor_is_refused():
    unet = tiny_unet()
    install_sra(unet)
    with pytest.raises(ValueError, match=r"set_default_attn_processor.*SRAAttnProcessor"):
        unet.set_default_attn_processor()  # diffusers' own refusal for a non-stock processor
    assert all(type(p) is SRAAttnProcessor for p in self_attention_processors(unet).values())


REPLACERS = {
    "fuse_qkv_projections": lambda unet: unet.fuse_qkv_projections(),
    "set_attention_slice": lambda unet: unet.set_attention_slice("max"),
    "set_attn_processor": lambda unet: unet.set_attn_processor(AttnProcessor2_0()),
}


@pytest.mark.parametrize("call", REPLACERS)
def test_a_call_that_removes_sra_is_refused_until_install_sra(call):
    unet = tiny_unet()
    state = install_sra(unet)
    x, t, emb = inputs()
    M = box()
    before = forward(unet, x, t, emb, M)
    REPLACERS[call](unet)
    with pytest.raises(RuntimeError, match=rf"\d+ of its \d+ self-attention layers now run .*{call}\(\)"):
        forward(unet, x, t, emb, M)
    with state.use(M), pytest.raises(RuntimeError, match=rf"{call}\(\)"):
        forward(unet, x, t, emb)
    forward(unet, x, t, emb)  # without a mask nothing needs SRA

    assert install_sra(unet) is state, "installing again reuses the handle"
    assert all(type(p) is SRAAttnProcessor for p in self_attention_processors(unet).values())
    torch.testing.assert_close(forward(unet, x, t, emb, M), before, rtol=1e-5, atol=1e-5)


def test_unfuse_qkv_projections_brings_sra_back():
    unet = tiny_unet()
    install_sra(unet)
    x, t, emb = inputs()
    before = forward(unet, x, t, emb, box())
    unet.fuse_qkv_projections()
    unet.unfuse_qkv_projections()
    assert torch.equal(forward(unet, x, t, emb, box()), before)


def test_pixel_unet_refuses_a_replaced_processor(pixel_model):
    unet = copy.deepcopy(pixel_model.unet)
    state = install_sra(unet)
    attn = next(m for m in unet.modules() if isinstance(m, Attention))
    attn.set_processor(AttnProcessor2_0())
    x = torch.randn(1, unet.config.in_channels, 8, 8)
    with state.use(box(1, 8, 8)), pytest.raises(RuntimeError, match=r"1 of its \d+ self-attention layers now run"):
        unet(x, torch.tensor([5]))


# LoRA -----------------------------------------------------------------------------------------


def test_lora_load_and_fuse_keep_sra():
    pytest.importorskip("peft")
    from peft import LoraConfig
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils import get_peft_model_state_dict

    donor = tiny_unet()
    torch.manual_seed(5)
    config = LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    donor.add_adapter(config)
    lora = get_peft_model_state_dict(donor)
    unet, stock = tiny_unet(), tiny_unet()
    install_sra(unet)
    x, t, emb = inputs()
    M = box()
    without_lora = forward(unet, x, t, emb, M)
    unet.load_lora_adapter(lora, prefix=None, adapter_name="test")
    stock.load_lora_adapter(lora, prefix=None, adapter_name="test")

    attn1 = unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1
    assert isinstance(attn1.to_q, BaseTunerLayer) and type(attn1.processor) is SRAAttnProcessor
    on = assert_sra_acts(unet, stock, x, t, emb, M)
    assert (on - without_lora).abs().max() > 1e-3, "the LoRA acts"
    unet.fuse_lora()
    torch.testing.assert_close(forward(unet, x, t, emb, M), on, rtol=1e-5, atol=1e-5)


# What diffusers' common model tests do --------------------------------------------------------


def test_attn_processors_round_trip():
    unet, stock = tiny_unet(), tiny_unet()
    install_sra(unet)
    x, t, emb = inputs()
    M = box()
    before = forward(unet, x, t, emb, M)
    sra = unet.attn_processors
    unet.set_attn_processor(unet.attn_processors)  # "can be set to itself" (diffusers' test)
    assert torch.equal(forward(unet, x, t, emb, M), before)
    unet.set_attn_processor({k: AttnProcessor2_0() for k in sra})
    assert torch.equal(forward(unet, x, t, emb), forward(stock, x, t, emb))
    unet.set_attn_processor(sra)
    assert torch.equal(forward(unet, x, t, emb, M), before)


def test_save_and_load_with_sra_installed(tmp_path):
    unet, stock = tiny_unet(), tiny_unet()
    install_sra(unet)
    x, t, emb = inputs()
    M = box()
    before = forward(unet, x, t, emb, M)
    unet.save_pretrained(tmp_path)
    loaded = UNet2DConditionModel.from_pretrained(tmp_path).eval()
    assert loaded.state_dict().keys() == stock.state_dict().keys(), "SRA adds no weights"
    assert all(type(p) is AttnProcessor2_0 for p in loaded.attn_processors.values()), "nor saved processors"
    plain = forward(loaded, x, t, emb)
    install_sra(loaded)
    assert torch.equal(forward(loaded, x, t, emb, torch.zeros_like(M)), plain)
    # equal weights, yet a loaded UNet is not bit-identical to its original even without SRA (≈1e-6)
    torch.testing.assert_close(forward(loaded, x, t, emb, M), before, rtol=1e-5, atol=1e-5)
    assert (forward(loaded, x, t, emb, M) - plain).abs().max() > 1e-4
    assert torch.equal(forward(unet, x, t, emb, M), before), "saving leaves SRA in place"


def test_a_deep_copy_has_its_own_handle():
    unet, stock = tiny_unet(), tiny_unet()
    state = install_sra(unet)
    clone = copy.deepcopy(unet)
    x, t, emb = inputs()
    M = box()
    assert install_sra(clone) is not state
    with state.use(M):
        assert torch.equal(forward(clone, x, t, emb), forward(stock, x, t, emb)), "the original's mask stays home"
    with install_sra(clone).use(M):
        assert torch.equal(forward(clone, x, t, emb), forward(unet, x, t, emb, M))


def test_forward_chunking_keeps_sra():
    """UNet2DConditionModel has no ``enable_forward_chunking``; this is what that method does in the
    models that have it (every transformer block chunks its feed-forward)."""
    unet, stock = tiny_unet(), tiny_unet()
    install_sra(unet)
    x, t, emb = inputs()
    M = box()
    before = forward(unet, x, t, emb, M)
    for model in (unet, stock):
        blocks = [m for m in model.modules() if hasattr(m, "set_chunk_feed_forward")]
        assert blocks
        for block in blocks:
            block.set_chunk_feed_forward(chunk_size=1, dim=1)
    torch.testing.assert_close(assert_sra_acts(unet, stock, x, t, emb, M), before, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("route", ["cross_attention_kwargs", "state"])
def test_gradient_checkpointing_recomputes_with_the_mask(route):
    """Checkpointing recomputes each transformer block in the backward pass; the gradients must be
    those of SRA (the mask reaches the recomputation), not of plain attention."""
    x, t, emb = inputs(2, 8, 12)
    M = box(2, 8, 12)

    def grads(checkpointing: bool, mask) -> list[torch.Tensor]:
        unet = tiny_unet().train()
        state = install_sra(unet)
        if checkpointing:
            unet.enable_gradient_checkpointing()
        if route == "state":
            with state.use(mask):
                unet(x, t, encoder_hidden_states=emb).sample.square().mean().backward()
        else:
            kwargs = {"cross_attention_kwargs": {"sra_mask": mask}}
            loss = unet(x, t, encoder_hidden_states=emb, **kwargs).sample.square().mean()
            loss.backward()  # outside any context: the mask travels as an argument
        return [p.grad for p in unet.parameters() if p.grad is not None]

    plain, full, checkpointed = grads(False, None), grads(False, M), grads(True, M)
    assert max((a - b).abs().max() for a, b in zip(full, plain, strict=True)) > 1e-4, "SRA changes the gradients"
    for a, b in zip(checkpointed, full, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("mode", ["split", "bias"])
def test_determinism_and_no_leak_between_calls(mode):
    """Same inputs give the same bits, and the per-grid cache never serves one mask's plan to
    another, whichever route set it (references: a fresh model per mask)."""
    x, t, emb = inputs(2, 12, 16)
    A = box(2, 12, 16)
    B = torch.zeros_like(A)
    B[1, 2:9, 1:5] = True

    def fresh(mask):
        unet = tiny_unet()
        install_sra(unet).set_mode(mode)
        return forward(unet, x, t, emb, mask)

    ref_a, ref_b = fresh(A), fresh(B)
    assert not torch.equal(ref_a, ref_b)
    unet, stock = tiny_unet(), tiny_unet()
    state = install_sra(unet)
    state.set_mode(mode)
    assert torch.equal(forward(unet, x, t, emb, A), ref_a)
    assert torch.equal(forward(unet, x, t, emb, A.clone()), ref_a), "same inputs, same bits"
    assert torch.equal(forward(unet, x, t, emb, B), ref_b)
    assert torch.equal(forward(unet, x, t, emb), forward(stock, x, t, emb)), "a call without a mask is plain"
    with state.use(A):
        assert torch.equal(forward(unet, x, t, emb), ref_a), "the state route equals the kwargs route"
        assert torch.equal(forward(unet, x, t, emb, B), ref_b), "a per-call mask wins over the state's"
        assert torch.equal(forward(unet, x, t, emb), ref_a), "and leaves the state's route correct"


def test_torch_compile_traces_an_sra_layer(without_shape_checker):
    """Dynamo captures the SRA processor (graph breaks allowed) and the compiled layer equals eager;
    a counting backend keeps this to tracing (no code generation). The shape checker is off, as
    outside the tests: beartype's checks do not run under dynamo."""
    from torch._dynamo.testing import CompileCounter

    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=2, dim_head=8).eval()
    state = install_sra(torch.nn.ModuleDict({"attn": attn}))
    hs = torch.randn(2, 6 * 5, 16)
    M = box(2, 6, 5)
    counter = CompileCounter()
    compiled = torch.compile(attn, backend=counter)
    with torch.no_grad():
        for mode in ("split", "bias"):
            state.set_mode(mode)
            torch.testing.assert_close(compiled(hs, sra_mask=M), attn(hs, sra_mask=M), rtol=0, atol=0)
            with state.use(M):
                torch.testing.assert_close(compiled(hs), attn(hs), rtol=0, atol=0)
            assert not torch.equal(attn(hs, sra_mask=M), attn(hs))
    assert counter.frame_count >= 1 and counter.op_count > 0


@pytest.mark.skipif(
    not os.environ.get("ERADIFF_COMPILE_TESTS"),
    reason="torch.compile of the tiny UNet takes 11-16 s on the 2-core CI CPU even with the eager backend "
    "(measured), over the 10 s budget of a test; set ERADIFF_COMPILE_TESTS=1 to run it",
)
def test_torch_compile_tiny_unet(without_shape_checker):
    unet = tiny_unet()
    state = install_sra(unet)
    x, t, emb = inputs()
    M = box()
    eager = forward(unet, x, t, emb, M)
    compiled = torch.compile(unet, backend="eager")
    torch.testing.assert_close(forward(compiled, x, t, emb, M), eager, rtol=0, atol=0)
    with state.use(M):
        torch.testing.assert_close(forward(compiled, x, t, emb), eager, rtol=0, atol=0)


# The cross_attention_kwargs route and its log -----------------------------------------------------


def test_kwargs_route_logs_nothing_but_a_model_without_sra_still_warns():
    unet, stock = tiny_unet(), tiny_unet()
    install_sra(unet)
    x, t, emb = inputs()
    with Records(Attention.__module__) as records:
        forward(unet, x, t, emb, box())
    assert not [m for m in records.messages if IGNORED in m], "cross-attention layers ignore sra_mask quietly"
    with Records(Attention.__module__) as records:
        forward(stock, x, t, emb, box())
    warned = [m for m in records.messages if IGNORED in m]
    assert len(warned) == len(self_attention_names(stock)), "each self-attention layer without SRA says so"
    assert all("['sra_mask']" in m and "AttnProcessor2_0" in m for m in warned)


def test_unet2d_model_keeps_the_state_route(pixel_model):
    """UNet2DModel.forward has no cross_attention_kwargs: the state is its only route."""
    unet = copy.deepcopy(pixel_model.unet)
    state = install_sra(unet)
    x = torch.randn(1, unet.config.in_channels, 8, 8)
    with torch.no_grad():
        off = unet(x, torch.tensor([5])).sample
        with state.use(box(1, 8, 8)):
            on = unet(x, torch.tensor([5])).sample
    assert (on - off).abs().max() > 1e-5


# A stock StableDiffusionInpaintPipeline --------------------------------------------------------


def pipeline_inputs(pipe: StableDiffusionInpaintPipeline):
    """A 32×32 image and a box mask; the SRA mask is the pipeline mask at the latent grid."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 32, 32, generator=g)
    M = box(1, 32, 32)
    return image, M, downsample_mask(M, factor=pipe.vae_scale_factor)


def run_pipeline(pipe, image, M, **kwargs) -> torch.Tensor:
    return pipe(
        prompt="a", image=image, mask_image=M[:, None].float(), height=32, width=32, num_inference_steps=3,
        guidance_scale=5.0, generator=torch.Generator().manual_seed(1), output_type="pt", **kwargs,
    ).images  # fmt: skip


@pytest.fixture
def pipe(sd2_folder):
    pipe = StableDiffusionInpaintPipeline.from_pretrained(sd2_folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_stock_inpaint_pipeline_with_sra_mask(pipe):
    image, M, m = pipeline_inputs(pipe)
    plain = run_pipeline(pipe, image, M)
    state = install_sra(pipe.unet)
    with Records(Attention.__module__) as records:
        on = run_pipeline(pipe, image, M, cross_attention_kwargs={"sra_mask": m})  # batch 2 (guidance), mask batch 1
    assert not [msg for msg in records.messages if IGNORED in msg]
    assert (on - plain).abs().max() > 1e-4
    assert torch.equal(run_pipeline(pipe, image, M, cross_attention_kwargs={"sra_mask": torch.zeros_like(m)}), plain)
    with state.use(m):
        assert torch.equal(run_pipeline(pipe, image, M), on), "the state route gives the same image"


def test_stock_pipeline_with_ip_adapter_and_sra(pipe):
    image, M, m = pipeline_inputs(pipe)
    install_sra(pipe.unet)
    pipe.load_ip_adapter(ip_adapter_state_dict(pipe.unet), subfolder="", weight_name="", image_encoder_folder=None)
    assert all(type(p) is SRAAttnProcessor for p in self_attention_processors(pipe.unet).values())
    embeds = [torch.randn(2, 1, 32, generator=torch.Generator().manual_seed(6))]  # (negative, positive) × 1 image
    plain = run_pipeline(pipe, image, M, ip_adapter_image_embeds=embeds)
    on = run_pipeline(pipe, image, M, ip_adapter_image_embeds=embeds, cross_attention_kwargs={"sra_mask": m})
    empty = run_pipeline(pipe, image, M, ip_adapter_image_embeds=embeds, cross_attention_kwargs={"sra_mask": m & False})
    assert (on - plain).abs().max() > 1e-4
    assert torch.equal(empty, plain)
