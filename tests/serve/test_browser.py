"""The page in a real headless Chromium (Debian's): open the example photo, paint, erase, compare.

Drives ``eradiff serve``'s page over the Chrome DevTools Protocol against a live uvicorn server
with the tiny random model, and saves ``tests/artifacts/serve-browser.png`` (git-ignored).
"""

from __future__ import annotations

import base64
import io

import cv2
import numpy as np
import pytest
from PIL import Image
from serve_helpers import CHROMIUM, EXAMPLES, ROOT, Browser

from eradiff.pipeline.io import read_image

pytest.importorskip("fastapi", reason="needs the serve extra: pip install -e '.[serve]'")
pytest.importorskip("websockets", reason="the DevTools client needs websockets (the dev extra)")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="headless Chromium is not installed (.ci/system-deps: apt-get install chromium)"
)

ARTIFACT = ROOT / "tests" / "artifacts" / "serve-browser.png"


@pytest.fixture
def browser(tmp_path):
    b = Browser(tmp_path / "chromium-profile")
    yield b
    b.close()


def _png(data_url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def test_paint_erase_compare_download_keep_editing(browser, live_server):
    browser.goto(live_server + "/")
    browser.wait_for("document.getElementById('model-info').textContent.includes('tiny-pixel')")
    assert browser.evaluate("document.body.dataset.state") == "empty"

    # 1. open the example photo through the file picker
    browser.set_files("#image-input", [EXAMPLES / "photo.jpg"])
    browser.wait_for("document.body.dataset.state === 'editing'")
    assert browser.evaluate("[eradiffPage.current.width, eradiffPage.current.height]") == [1024, 640]

    # 2. paint a stroke across the ladybird (examples/mask.png covers x 662–777, y 276–400)
    for selector, value in (("#size", 24), ("#opt-seed", 5), ("#opt-steps", 8), ("#opt-format", "png")):
        browser.set_value(selector, value)
    assert browser.evaluate("document.getElementById('size-out').textContent") == "24"
    rect = browser.evaluate("(() => { const r = document.getElementById('mask').getBoundingClientRect();"
                            " return [r.x, r.y, r.width, r.height]; })()")  # fmt: skip
    x0, y0, w, h = rect
    s = w / 1024

    def at(x: float, y: float) -> tuple[float, float]:
        return x0 + x * s, y0 + y * s

    browser.drag([at(x, 338 + 12 * np.sin(x / 15)) for x in range(680, 765, 5)])
    browser.click("#undo")
    assert browser.evaluate("eradiffPage.ops.length") == 0
    browser.click("#redo")
    assert browser.evaluate("eradiffPage.ops.length") == 1
    stroke = _png(browser.evaluate("document.getElementById('mask').toDataURL('image/png')"))[..., 3] > 127
    ladybird = np.asarray(Image.open(EXAMPLES / "mask.png").convert("L")) > 127
    assert stroke.shape == (640, 1024)
    assert (stroke & ladybird).sum() > 0.8 * stroke.sum()  # the stroke lies on the ladybird

    # 3. erase and wait for the result
    browser.click("#erase")
    browser.wait_for("document.body.dataset.state === 'result'", timeout=180)
    assert browser.evaluate("document.getElementById('status').classList.contains('error')") is False
    result = np.asarray(Image.open(io.BytesIO(base64.b64decode(browser.evaluate("eradiffPage.resultBase64()")))))
    original = read_image(EXAMPLES / "photo.jpg").pixels
    assert result.shape == original.shape == (640, 1024, 3)
    diff = np.abs(result.astype(int) - original.astype(int)).max(axis=2)
    assert diff[stroke].mean() > 10  # the stroke was regenerated
    near = cv2.dilate(stroke.astype(np.uint8), np.ones((41, 41), np.uint8)) > 0
    assert np.array_equal(result[~near], original[~near])  # far from it: bit-identical (PNG result)
    assert browser.evaluate("eradiffPage.result.filename") == "photo.erased.png"
    assert browser.evaluate("eradiffPage.result.seed") == 5
    assert browser.evaluate("document.getElementById('download').download") == "photo.erased.png"

    # 4. the comparison slider and the screenshot
    browser.evaluate("document.getElementById('split').value = 60;"
                     "document.getElementById('split').dispatchEvent(new Event('input'))")  # fmt: skip
    assert "inset(0px 40% 0px 0px)" in browser.evaluate("document.getElementById('before').style.clipPath")
    browser.wait_for("document.getElementById('after').complete && document.getElementById('after').naturalWidth")
    browser.screenshot(ARTIFACT)
    assert ARTIFACT.stat().st_size > 10_000

    # 5. keep working on the result
    browser.click("#keep")
    browser.wait_for("document.body.dataset.state === 'editing'")
    assert browser.evaluate("eradiffPage.ops.length") == 0
    assert browser.evaluate("eradiffPage.current.blob.type") == "image/png"
    assert browser.evaluate("document.getElementById('revert').hidden") is False
    assert not [line for line in browser.console if line.startswith("exception")], browser.console
