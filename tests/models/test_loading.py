"""Model loading: every spec kind, round trips, and one-line errors for every malformed input."""

import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

import eradiff.models.loading as loading
from eradiff.errors import ModelLoadError
from eradiff.models.family import LatentInpaintModel, PixelInpaintModel
from eradiff.models.loading import (
    load_model,
    read_checkpoint_config,
    resolve_device,
    save_checkpoint,
    save_pixel_model,
)
from eradiff.testing import tiny_pixel_config


def test_sd2_folder_loads_as_latent_model(latent_model, sd2_folder):
    m = latent_model
    assert isinstance(m, LatentInpaintModel) and m.family == "latent"
    assert m.vae_scale == 2 and m.size_multiple == 2 and m.native_size == 32
    assert m.schedule.prediction_type == "epsilon" and m.schedule.steps_offset == 1
    assert not m.schedule.set_alpha_to_one
    assert not m.unet.training and not any(p.requires_grad for p in m.unet.parameters())
    assert m.encode_prompt("").shape == (1, 77, 32), "the empty-prompt embedding is cached"
    assert m.source == str(sd2_folder)
    procs = {type(p).__name__ for p in m.unet.attn_processors.values()}
    assert procs == {"SRAAttnProcessor", "AttnProcessor2_0"}


def test_pixel_single_file_round_trip(tmp_path):
    torch.manual_seed(0)
    model = PixelInpaintModel(tiny_pixel_config())
    path = tmp_path / "p.safetensors"
    save_pixel_model(model, path)
    config = read_checkpoint_config(path)
    assert config["family"] == "pixel" and config["factor"] == 2
    loaded = load_model(path)
    assert isinstance(loaded, PixelInpaintModel) and loaded.config.unet == model.config_dict()["unet"]
    for (k, a), (k2, b) in zip(model.unet.state_dict().items(), loaded.unet.state_dict().items(), strict=True):
        assert k == k2 and b.dtype == torch.float32
        assert torch.equal(a.half().float(), b), "fp16 on disk, cast back to fp32"
    save_pixel_model(model, tmp_path / "p32.safetensors", dtype=torch.float32)
    exact = load_model(tmp_path / "p32.safetensors")
    pairs = zip(model.unet.state_dict().values(), exact.unet.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_latent_single_file_names_its_base_model(latent_model, tmp_path):
    with torch.no_grad():
        next(latent_model.unet.parameters()).add_(1.0)  # "fine-tuned" weights
    try:
        save_checkpoint(latent_model, tmp_path / "ft.safetensors", dtype=torch.float32)
        config = read_checkpoint_config(tmp_path / "ft.safetensors")
        assert config["family"] == "latent" and config["base_model"] == latent_model.source
        loaded = load_model(tmp_path / "ft.safetensors")
        assert isinstance(loaded, LatentInpaintModel) and loaded.name == config["name"]
        for a, b in zip(latent_model.unet.state_dict().values(), loaded.unet.state_dict().values(), strict=True):
            assert torch.equal(a, b)
    finally:
        with torch.no_grad():
            next(latent_model.unet.parameters()).sub_(1.0)


def test_default_model_not_shipped_yet(monkeypatch, tmp_path):
    monkeypatch.setattr(loading, "DEFAULT_MODEL_PATH", tmp_path / "default.safetensors")
    for spec in (None, "default"):
        with pytest.raises(ModelLoadError, match="not shipped yet"):
            load_model(spec)


def test_default_model_loads_when_shipped(monkeypatch, pixel_file):
    monkeypatch.setattr(loading, "DEFAULT_MODEL_PATH", pixel_file)
    assert isinstance(load_model(None), PixelInpaintModel)


def one_line(exc_info):
    message = str(exc_info.value)
    assert "\n" not in message and message
    return message


def test_missing_and_wrong_kinds(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file or folder") as e:
        load_model(tmp_path / "nope")
    one_line(e)
    with pytest.raises(ModelLoadError, match="no model_index.json"):
        load_model(tmp_path)
    (tmp_path / "w.ckpt").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ModelLoadError, match="pickle files are not loaded"):
        load_model(tmp_path / "w.ckpt")
    with pytest.raises(ModelLoadError, match="no such file"):
        load_model(tmp_path / "missing.safetensors")


def test_safetensors_without_or_with_bad_metadata(tmp_path):
    tensors = {"w": torch.zeros(2)}
    save_file(tensors, tmp_path / "plain.safetensors")
    with pytest.raises(ModelLoadError, match="not an eradiff checkpoint"):
        load_model(tmp_path / "plain.safetensors")
    save_file(tensors, tmp_path / "bad.safetensors", metadata={"eradiff_config": "{not json"})
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        load_model(tmp_path / "bad.safetensors")
    save_file(tensors, tmp_path / "fam.safetensors", metadata={"eradiff_config": json.dumps({"family": "gan"})})
    with pytest.raises(ModelLoadError, match="unknown model family 'gan'"):
        load_model(tmp_path / "fam.safetensors")
    save_file(tensors, tmp_path / "px.safetensors", metadata={"eradiff_config": json.dumps({"family": "pixel"})})
    with pytest.raises(ModelLoadError, match="malformed pixel-model config"):
        load_model(tmp_path / "px.safetensors")
    save_file(tensors, tmp_path / "lat.safetensors", metadata={"eradiff_config": json.dumps({"family": "latent"})})
    with pytest.raises(ModelLoadError, match="must name its base_model"):
        load_model(tmp_path / "lat.safetensors")


def test_weights_that_do_not_fit_the_config(tmp_path):
    config = tiny_pixel_config()
    meta = {"eradiff_config": json.dumps(PixelInpaintModel(config).config_dict())}
    save_file({"w": torch.zeros(2)}, tmp_path / "x.safetensors", metadata=meta)
    with pytest.raises(ModelLoadError, match="do not match the model config") as e:
        load_model(tmp_path / "x.safetensors")
    one_line(e)
    state = {k: v.clone() for k, v in PixelInpaintModel(config).unet.state_dict().items()}
    key = next(iter(state))
    state[key] = torch.zeros(3, 3)
    save_file(state, tmp_path / "y.safetensors", metadata=meta)
    with pytest.raises(ModelLoadError, match="has shape"):
        load_model(tmp_path / "y.safetensors")


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_garbage_safetensors_is_a_model_load_error(tmp_path, data):
    path = tmp_path / "g.safetensors"
    path.write_bytes(data)
    with pytest.raises(ModelLoadError) as e:
        load_model(path)
    one_line(e)


def test_folder_that_is_not_an_inpainting_model(sd2_folder, tmp_path):
    import shutil

    bad = tmp_path / "sd-txt2img"
    shutil.copytree(sd2_folder, bad)
    config = json.loads((bad / "unet" / "config.json").read_text())
    config["in_channels"] = 4
    (bad / "unet" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="not an inpainting model: its UNet has 4 input channels"):
        load_model(bad)
    (bad / "model_index.json").write_text("[1, 2")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        load_model(bad)


def test_hub_id_offline_and_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(ModelLoadError, match="cannot load model 'nobody/no-such-model'") as e:
        load_model("nobody/no-such-model", offline=True)
    one_line(e)
    with pytest.raises(ModelLoadError, match="not a hub id"):
        load_model("not a/hub id/at all")


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="device='tpu' is not valid"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")
