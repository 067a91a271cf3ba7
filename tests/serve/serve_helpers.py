"""Helpers for the serve tests: small test images and a minimal Chrome DevTools Protocol client."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def png_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def encoded(a: np.ndarray, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def photo(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth random RGB test image."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (h + w)], axis=-1)
    return np.clip(base + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)


def box_mask(h: int = 48, w: int = 64, box: tuple[int, int, int, int] = (20, 16, 36, 30)) -> np.ndarray:
    x0, y0, x1, y1 = box
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 255
    return m


# -- a minimal Chrome DevTools Protocol client (no browser download: Debian's /usr/bin/chromium) ----

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
)  # fmt: skip


class Browser:
    """Headless Chromium driven over the DevTools protocol (one page, synchronous calls).

    Args:
        user_data_dir: a fresh folder for the profile.
        width, height: the window size in CSS pixels.
    """

    def __init__(self, user_data_dir: Path, *, width: int = 1400, height: int = 900, timeout: float = 60.0) -> None:

        from websockets.sync.client import connect

        self.process = subprocess.Popen(
            [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", "--remote-debugging-port=0",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        port = None
        self.log: list[str] = []
        while port is None:
            line = self.process.stderr.readline()
            if not line and (self.process.poll() is not None or time.monotonic() > deadline):
                raise RuntimeError("chromium did not start:\n" + "".join(self.log[-20:]))
            self.log.append(line)
            found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            port = int(found.group(1)) if found else None

        threading.Thread(target=self._drain, daemon=True).start()
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                pages = [t for t in json.load(r) if t["type"] == "page"]
            if pages:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("chromium opened no page")
            time.sleep(0.1)
        # entered as a context manager: websockets ≥ 17.1 warns on a bare connect()
        self.ws = connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=timeout).__enter__()
        self._id = 0
        self.console: list[str] = []
        self.call("Runtime.enable")
        self.call("Page.enable")

    def _drain(self) -> None:
        for line in self.process.stderr:
            self.log.append(line)

    def call(self, method: str, timeout: float = 60.0, **params):
        """Send one command and return its result (events that arrive meanwhile are logged)."""

        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=timeout))
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if message.get("method") == "Runtime.consoleAPICalled":
                args = message["params"]["args"]
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
            elif message.get("method") == "Runtime.exceptionThrown":
                self.console.append("exception: " + json.dumps(message["params"]["exceptionDetails"])[:500])

    def evaluate(self, expression: str, timeout: float = 60.0):
        """The value of a JavaScript expression (promises awaited)."""
        result = self.call("Runtime.evaluate", timeout=timeout, expression=expression, awaitPromise=True,
                           returnByValue=True)  # fmt: skip
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60.0, interval: float = 0.1):
        """Poll until ``expression`` is truthy; returns its value."""

        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                status = self.evaluate("(document.getElementById('status') || {}).textContent")
                raise TimeoutError(
                    f"waited {timeout} s for {expression!r}; status {status!r}; console {self.console[-10:]}"
                )
            time.sleep(interval)

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def set_files(self, selector: str, paths: list[Path]) -> None:
        root = self.call("DOM.getDocument")["root"]["nodeId"]
        node = self.call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        self.call("DOM.setFileInputFiles", nodeId=node, files=[str(p) for p in paths])

    def mouse(self, kind: str, x: float, y: float, *, buttons: int = 0) -> None:
        button = "left" if kind in ("mousePressed", "mouseReleased") or buttons else "none"
        self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button=button, buttons=buttons, clickCount=1)

    def drag(self, points: list[tuple[float, float]]) -> None:
        """Press at the first point, move through the others, release at the last."""
        self.mouse("mouseMoved", *points[0])
        self.mouse("mousePressed", *points[0], buttons=1)
        for x, y in points[1:]:
            self.mouse("mouseMoved", x, y, buttons=1)
        self.mouse("mouseReleased", *points[-1])

    def click(self, selector: str) -> None:
        box = self.evaluate(f"(() => {{ const e = document.querySelector({selector!r});"
                            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
                            " return [r.x + r.width / 2, r.y + r.height / 2]; })()")  # fmt: skip
        self.mouse("mouseMoved", *box)
        self.mouse("mousePressed", *box, buttons=1)
        self.mouse("mouseReleased", *box)

    def set_value(self, selector: str, value) -> None:
        """Set a form control's value and fire ``input`` and ``change`` as a user's edit would."""
        self.evaluate(f"(() => {{ const e = document.querySelector({selector!r}); e.value = {json.dumps(value)};"
                      " e.dispatchEvent(new Event('input')); e.dispatchEvent(new Event('change')); })()")  # fmt: skip

    def screenshot(self, path: Path) -> None:

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(10)
            except Exception:
                self.process.kill()
                self.process.wait(10)
