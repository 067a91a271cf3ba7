"""HTTP API of ``eradiff serve`` through an in-process client: a real erase and every 4xx/5xx path."""

from __future__ import annotations

import io
import json
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from serve_helpers import EXAMPLES, box_mask, encoded, photo, png_bytes

from eradiff.pipeline.io import read_image

pytest.importorskip("fastapi", reason="needs the serve extra: pip install -e '.[serve]'")


def post(client, image: bytes, mask: bytes | None, options: dict | str | None = None, *, path="/api/erase",
         image_name="photo.png", headers=None):  # fmt: skip
    files = {"image": (image_name, image, "application/octet-stream")}
    if mask is not None:
        files["mask"] = ("mask.png", mask, "image/png")
    data = {}
    if options is not None:
        data["options"] = options if isinstance(options, str) else json.dumps(options)
    return client.post(path, files=files, data=data, headers=headers or {})


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def assert_error(r, status: int, code: str, *words: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["code"] == code, body
    for word in words:
        assert word in body["error"], body


def leftovers(client) -> list[Path]:
    return list(Path(client.app.state.settings.tmp_dir).rglob("*"))


# -- the page and the info routes ------------------------------------------------------------------


def test_health_and_model_info(client, serve_model):
    r = client.get("/api/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.json()["queue"] == {"running": 0, "waiting": 0, "capacity": 8, "completed": 0, "failed": 0}
    info = client.get("/api/model").json()
    assert info["name"] == serve_model.name == "tiny-pixel"
    assert info["native_size"] == serve_model.native_size == 32
    assert info["backend"] == "torch" and info["device"] == "cpu" and info["family"] == "pixel"
    assert info["defaults"]["steps"] == 20 and info["defaults"]["seed"] == 0
    assert info["defaults"]["sampler"] == "ddim" and "dpmpp-2m" in info["options"]["sampler"]
    assert info["limits"]["max_pixels"] == 50_000_000


def test_page_and_static_files_are_served_with_a_csp(client):
    r = client.get("/")
    assert r.status_code == 200 and '<canvas id="mask"' in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"]
    assert_error(client.get("/static/../pyproject.toml"), 404, "not_found")
    assert_error(client.get("/nothing-here"), 404, "not_found")


def test_no_page_needs_the_internet_and_the_openapi_schema_stays(client):
    """FastAPI's docs page loads Swagger from a CDN that the CSP forbids: there is none; the schema is served."""
    assert_error(client.get("/api/docs"), 404, "not_found")
    assert_error(client.get("/docs"), 404, "not_found")
    schema = client.get("/api/openapi.json")
    assert schema.status_code == 200 and "/api/erase" in schema.json()["paths"]
    page = client.get("/").text
    assert "http://" not in page and "https://" not in page


# -- real erases -----------------------------------------------------------------------------------


def test_erase_png_changes_the_mask_only_and_reports_seed_and_timings(client):
    image, mask = photo(), box_mask()
    r = post(client, png_bytes(image), png_bytes(mask), {"steps": 4, "seed": 11, "dilate": 2, "feather": 0})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-eradiff-seed"] == "11"
    assert r.headers["x-eradiff-windows"] == "1"
    timing = dict(item.split(";dur=") for item in r.headers["server-timing"].split(", "))
    assert set(timing) == {"decode", "queue", "erase", "encode", "total"} and float(timing["erase"]) > 0
    assert 'filename="photo.erased.png"' in r.headers["content-disposition"]
    out = decode(r.content)
    assert out.shape == image.shape and out.dtype == np.uint8
    inside = mask > 0
    grown = np.zeros_like(inside)
    grown[16 - 3 : 30 + 3, 20 - 3 : 36 + 3] = True  # dilate 2 (+1 px rounding)
    assert np.abs(out[inside].astype(int) - image[inside]).mean() > 5
    np.testing.assert_array_equal(out[~grown], image[~grown])
    again = post(client, png_bytes(image), png_bytes(mask), {"steps": 4, "seed": 11, "dilate": 2, "feather": 0})
    assert again.content == r.content  # same seed, same bytes
    assert leftovers(client) == []


def test_random_seed_is_reported_and_reproduces(client):
    image, mask = png_bytes(photo()), png_bytes(box_mask())
    r = post(client, image, mask, {"steps": 3, "seed": -1})
    seed = int(r.headers["x-eradiff-seed"])
    assert 0 <= seed < 2**31
    assert post(client, image, mask, {"steps": 3, "seed": seed}).content == r.content
    assert post(client, image, mask, {"steps": 3, "seed": None}).status_code == 200


def test_a_request_without_a_seed_uses_0_as_the_command_line(client):
    image, mask = png_bytes(photo()), png_bytes(box_mask())
    first, second = post(client, image, mask, {"steps": 3}), post(client, image, mask)
    assert first.headers["x-eradiff-seed"] == second.headers["x-eradiff-seed"] == "0"
    assert first.content == post(client, image, mask, {"steps": 3, "seed": 0}).content


def test_jpeg_in_jpeg_out_and_format_option(client):
    image = photo(64, 96)
    jpeg = encoded(image, "JPEG", quality=90)
    mask = png_bytes(box_mask(64, 96, (40, 20, 60, 40)))
    r = post(client, jpeg, mask, {"steps": 2}, image_name="holiday.jpg")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert 'filename="holiday.erased.jpg"' in r.headers["content-disposition"]
    r = post(client, jpeg, mask, {"steps": 2, "format": "png"}, image_name="holiday.jpg")
    assert r.headers["content-type"] == "image/png"
    out, original = decode(r.content), np.asarray(Image.open(io.BytesIO(jpeg)))
    far = np.ones(out.shape[:2], bool)
    far[10:50, 30:70] = False
    np.testing.assert_array_equal(out[far], original[far])  # lossless output: exact outside
    for alias, media in (("JPG", "image/jpeg"), ("tif", "image/tiff")):  # the aliases of eradiff.formats
        assert post(client, jpeg, mask, {"steps": 2, "format": alias}).headers["content-type"] == media


def test_sixteen_bit_png_keeps_sixteen_bits(client):
    image = (photo().astype(np.uint16) * 257 + 3).astype(np.uint16)
    import cv2

    ok, buf = cv2.imencode(".png", image[..., ::-1])
    r = post(client, buf.tobytes(), png_bytes(box_mask()), {"steps": 2, "dilate": 0, "feather": 0})
    assert r.status_code == 200
    out = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert out.dtype == np.uint16
    outside = box_mask() == 0
    outside[15:31, 19:37] = False
    np.testing.assert_array_equal(out[outside], image[outside])


def test_mask_of_same_aspect_other_size_is_resized_with_a_warning(client):
    r = post(client, png_bytes(photo(48, 64)), png_bytes(box_mask(24, 32, (10, 8, 18, 15))), {"steps": 2})
    assert r.status_code == 200, r.text
    warnings = json.loads(r.headers["x-eradiff-warnings"])
    assert len(warnings) == 1 and "resized" in warnings[0] and "/tmp" not in warnings[0]


def test_alpha_mask_is_read_from_its_alpha_channel(client):
    rgba = np.zeros((48, 64, 4), np.uint8)
    rgba[16:30, 20:36] = (255, 48, 96, 255)  # the page's painting colour, transparent elsewhere
    r = post(client, png_bytes(photo()), png_bytes(rgba), {"steps": 2})
    assert r.status_code == 200, r.text


# -- bad input: every error is JSON with a code ----------------------------------------------------


def test_not_an_image(client):
    assert_error(post(client, b"%PDF-1.4 not an image", png_bytes(box_mask())), 415, "not_an_image", "not an image")
    assert_error(post(client, png_bytes(photo()), b"hello"), 415, "not_an_image", "mask")
    assert_error(post(client, b"", png_bytes(box_mask())), 415, "not_an_image", "empty")
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
    assert_error(post(client, eps, png_bytes(box_mask())), 415, "not_an_image")  # Ghostscript formats refused
    assert leftovers(client) == []


def test_truncated_file(client):
    data = encoded(photo(), "JPEG", quality=90)
    r = post(client, data[: len(data) // 2], png_bytes(box_mask()), image_name="cut.jpg")
    assert_error(r, 422, "cannot_decode", "image 'cut.jpg'", "cannot be decoded")
    assert "/tmp" not in r.json()["error"] and "serve-tmp" not in r.json()["error"]
    data = png_bytes(photo())
    assert_error(post(client, data[:-200], png_bytes(box_mask())), 422, "cannot_decode")
    assert leftovers(client) == []


def test_mask_of_another_aspect_ratio(client):
    r = post(client, png_bytes(photo(48, 64)), png_bytes(box_mask(48, 48, (10, 10, 20, 20))))
    assert_error(r, 422, "aspect_ratio", "48×48", "64×48", "aspect ratios differ")
    assert "/tmp" not in r.json()["error"]


def test_empty_and_full_masks(client):
    assert_error(post(client, png_bytes(photo()), png_bytes(np.zeros((48, 64), np.uint8))), 422, "empty_mask")
    full = np.full((48, 64), 255, np.uint8)
    assert_error(post(client, png_bytes(photo()), png_bytes(full)), 422, "mask_covers_image")


def test_mask_that_covers_the_image_once_dilated_fails_in_the_worker(client):
    mask = np.full((48, 64), 255, np.uint8)
    mask[0, 0] = 0
    r = post(client, png_bytes(photo()), png_bytes(mask), {"dilate": 4})
    assert_error(r, 422, "bad_input", "dilated")
    assert client.get("/api/health").json()["queue"]["failed"] == 1


def test_file_over_the_size_limit(make_client):
    client = make_client(max_upload_mb=0.05)  # 51 KiB
    noisy = np.random.default_rng(0).integers(0, 256, (160, 160, 3), dtype=np.uint8)
    big = png_bytes(noisy)  # ~77 KiB: incompressible
    assert len(big) > 0.05 * 2**20
    r = post(client, big, png_bytes(box_mask(160, 160)))
    assert_error(r, 413, "too_large", "0.05 MiB")
    # the same without Content-Length (chunked): refused while streaming
    boundary = "xyz"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n').encode()
    body += big * 3 + f"\r\n--{boundary}--\r\n".encode()

    def chunks():
        for i in range(0, len(body), 8192):
            yield body[i : i + 8192]

    r = client.post(
        "/api/erase", content=chunks(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert_error(r, 413, "too_large")
    assert leftovers(client) == []


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width``×``height`` with a tiny (invalid) IDAT: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("side", [10_000, 100_000])
def test_pixel_count_over_the_limit_is_refused_before_decoding(client, side):
    import tracemalloc

    bomb = _png_header_only(side, side)
    tracemalloc.start()
    r = post(client, bomb, png_bytes(box_mask()))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert_error(r, 413, "too_many_pixels")
    assert peak < 50 * 2**20  # nothing near side² bytes was allocated
    assert_error(post(client, png_bytes(photo()), bomb), 413, "too_many_pixels", "mask")


def test_pixel_limit_setting(make_client):
    client = make_client(max_pixels=1000)
    assert_error(post(client, png_bytes(photo()), png_bytes(box_mask())), 413, "too_many_pixels", "64×48")


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ("{not json", ["not valid JSON"]),
        ("[1, 2]", ["JSON object"]),
        ({"stpes": 3}, ["unknown option 'stpes'", "steps"]),
        ({"steps": "10"}, ["'steps'", "sampling steps"]),
        ({"steps": 0}, ["'steps' = 0"]),
        ({"steps": 10_000}, ["'steps' = 10000"]),
        ({"sra": 1}, ["'sra'"]),
        ({"strength": 0}, ["strength"]),
        ({"dilate": -1}, ["'dilate' = -1"]),
        ({"seed": -5}, ["'seed' = -5"]),
        ({"init": "magic"}, ["init='magic'"]),
        ({"sampler": "euler"}, ["sampler='euler'", "dpmpp-2m"]),
        ({"sampler": "dpmpp-2m", "eta": 0.5}, ["needs sampler='ddim'"]),
        ({"format": "gif"}, ["'format'", "png"]),
    ],
)
def test_bad_options(client, options, words):
    assert_error(post(client, png_bytes(photo()), png_bytes(box_mask()), options), 422, "bad_options", *words)


def test_malformed_requests(client):
    assert_error(post(client, png_bytes(photo()), None), 400, "bad_request", "'mask' part is missing")
    assert_error(client.post("/api/erase", json={"image": "x"}), 400, "bad_request", "multipart/form-data")
    files = {"image": ("a.png", png_bytes(photo())), "mask": ("m.png", png_bytes(box_mask())), "path": ("p", b"/etc")}
    assert_error(client.post("/api/erase", files=files), 400, "bad_request", "unexpected part 'path'")
    assert_error(client.get("/api/erase"), 405, "method_not_allowed")


def test_no_request_path_reaches_the_filesystem(client, tmp_path):
    r = post(client, png_bytes(photo()), png_bytes(box_mask()), {"steps": 2}, image_name="../../../../tmp/evil x.png")
    assert r.status_code == 200
    assert 'filename="evil_x.erased.png"' in r.headers["content-disposition"]
    assert not Path("/tmp/evil x.png").exists() and not Path("/tmp/evil_x.erased.png").exists()
    assert leftovers(client) == []


def test_cross_origin_posts_and_foreign_hosts_are_refused(make_client):
    client = make_client(allowed_hosts=["testserver", "127.0.0.1"])
    image, mask = png_bytes(photo()), png_bytes(box_mask())
    assert_error(post(client, image, mask, headers={"origin": "https://evil.example"}), 403, "cross_origin")
    assert post(client, image, mask, {"steps": 1}, headers={"origin": "http://testserver"}).status_code == 200
    assert_error(post(client, image, mask, headers={"origin": "https://testserver"}), 403, "cross_origin")
    assert_error(post(client, image, mask, headers={"origin": "http://testserver:8001"}), 403, "cross_origin")
    assert_error(client.get("/api/health", headers={"host": "evil.example:8000"}), 400, "bad_host")
    assert client.get("/api/health", headers={"host": "127.0.0.1:8000"}).status_code == 200


# -- jobs, progress, queue -------------------------------------------------------------------------


def _events(client, job_id: str) -> list[dict]:
    events = []
    with client.stream("GET", f"/api/jobs/{job_id}/events") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


def test_job_progress_events_and_result(client):
    r = post(client, png_bytes(photo()), png_bytes(box_mask()), {"steps": 5, "seed": 3}, path="/api/jobs")
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] in ("queued", "running") and job["seed"] == 3
    events = _events(client, job["id"])
    assert events[-1]["state"] == "done" and events[-1]["filename"] == "photo.erased.png"
    assert events[-1]["steps"] == 5 and events[-1]["step"] == 5
    steps = [e["step"] for e in events if e["state"] == "running"]
    assert steps == sorted(steps)
    result = client.get(job["result"])
    assert result.status_code == 200 and result.headers["x-eradiff-seed"] == "3"
    sync = post(client, png_bytes(photo()), png_bytes(box_mask()), {"steps": 5, "seed": 3})
    assert sync.content == result.content
    status = client.get(f"/api/jobs/{job['id']}").json()
    assert status["state"] == "done" and status["report"]["steps_run"] == 5
    assert_error(client.get("/api/jobs/nope"), 404, "not_found")
    assert_error(client.get("/api/jobs/nope/result"), 404, "not_found")


def block(worker) -> tuple[threading.Event, threading.Event]:
    """Make ``worker`` wait inside erase until ``release.set()``; ``entered`` is set once it waits."""
    release, entered = threading.Event(), threading.Event()
    real = worker._erase

    def slow_erase(*args, **kwargs):
        entered.set()
        assert release.wait(30)
        return real(*args, **kwargs)

    worker._erase = slow_erase
    return release, entered


@pytest.fixture
def blocked(client):
    release, entered = block(client.app.state.worker)
    yield release, entered
    release.set()


def test_full_queue_gives_503_with_retry_after(make_client):
    client = make_client(queue=1)
    release, entered = block(client.app.state.worker)
    image, mask = png_bytes(photo()), png_bytes(box_mask())
    first = post(client, image, mask, {"steps": 2}, path="/api/jobs").json()
    assert entered.wait(10)
    second = post(client, image, mask, {"steps": 2}, path="/api/jobs").json()
    assert client.get(f"/api/jobs/{second['id']}").json() == {**client.get(f"/api/jobs/{second['id']}").json(),
                                                              "state": "queued", "position": 1}  # fmt: skip
    assert_error(client.get(f"/api/jobs/{second['id']}/result"), 409, "not_ready")
    r = post(client, image, mask, {"steps": 2})
    assert_error(r, 503, "queue_full", "queue is full")
    assert int(r.headers["retry-after"]) >= 1
    assert_error(post(client, image, mask, path="/api/jobs"), 503, "queue_full")
    release.set()
    for job in (first, second):
        assert _events(client, job["id"])[-1]["state"] == "done"
        assert client.get(job["result"]).status_code == 200
    assert client.get("/api/health").json()["queue"]["completed"] == 2
    assert leftovers(client) == []


def test_cancel_a_waiting_and_a_running_job(client, blocked):
    release, entered = blocked
    image, mask = png_bytes(photo()), png_bytes(box_mask())
    running = post(client, image, mask, {"steps": 50}, path="/api/jobs").json()
    assert entered.wait(10)
    waiting = post(client, image, mask, path="/api/jobs").json()
    assert client.delete(f"/api/jobs/{waiting['id']}").json()["state"] == "cancelled"
    assert client.delete(f"/api/jobs/{running['id']}").status_code == 200
    release.set()
    assert _events(client, running["id"])[-1]["state"] == "cancelled"
    assert_error(client.get(running["result"]), 409, "cancelled")
    # the worker goes on after a cancellation
    assert post(client, image, mask, {"steps": 2}).status_code == 200


# -- the built-in default model --------------------------------------------------------------------

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "eradiff" / "weights" / "default.safetensors"


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="the built-in default model is not shipped yet")
def test_erase_the_example_on_the_default_model(make_client):
    from eradiff.models.loading import load_model

    client = make_client(model=load_model("default"))
    photo_bytes = (EXAMPLES / "photo.jpg").read_bytes()
    r = post(client, photo_bytes, (EXAMPLES / "mask.png").read_bytes(), {"seed": 0, "format": "png"},
             image_name="photo.jpg")  # fmt: skip
    assert r.status_code == 200, r.text
    out, original = decode(r.content), read_image(EXAMPLES / "photo.jpg").pixels
    mask = np.asarray(Image.open(EXAMPLES / "mask.png").convert("L")) > 127
    far = np.ones_like(mask)
    ys, xs = np.nonzero(mask)
    far[ys.min() - 20 : ys.max() + 21, xs.min() - 20 : xs.max() + 21] = False
    np.testing.assert_array_equal(out[far], original[far])
    assert np.abs(out[mask].astype(int) - original[mask]).mean() > 10


def test_large_photo_is_erased_at_full_resolution_in_windows(client):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (1200, 1900, 3), dtype=np.uint8)
    mask = np.zeros((1200, 1900), np.uint8)
    mask[100:140, 200:260] = 255
    mask[900:950, 1500:1580] = 255
    r = post(client, png_bytes(image), png_bytes(mask), {"steps": 2, "dilate": 3})
    assert r.status_code == 200, r.text
    assert int(r.headers["x-eradiff-windows"]) == 2
    out = decode(r.content)
    assert out.shape == image.shape
    far = np.ones(mask.shape, bool)
    far[80:160, 180:280] = far[880:970, 1480:1600] = False
    np.testing.assert_array_equal(out[far], image[far])


def test_a_classical_fill_is_served_like_a_model(make_client):
    from eradiff.models.loading import load_model

    client = make_client(model=load_model("telea"))
    info = client.get("/api/model").json()
    assert info["family"] == "classical" and info["name"] == "telea" and info["native_size"] is None
    r = post(client, png_bytes(photo()), png_bytes(box_mask()), {"dilate": 0})
    assert r.status_code == 200, r.text
    out = np.asarray(Image.open(io.BytesIO(r.content)))
    keep = box_mask() == 0
    assert np.array_equal(out[keep], photo()[keep]) and not np.array_equal(out[~keep], photo()[~keep])
