"""A client that goes away cancels its request, tested against a real uvicorn with a real socket."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from urllib.parse import urlsplit

import pytest
from serve_helpers import box_mask, photo, png_bytes

pytest.importorskip("fastapi", reason="needs the serve extra: pip install -e '.[serve]'")


def multipart(fields: dict[str, tuple[str | None, bytes]]) -> tuple[bytes, str]:
    boundary = "eradiff-test-boundary"
    body = b""
    for name, (filename, data) in fields.items():
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def health(url: str) -> dict:
    with urllib.request.urlopen(url + "/api/health", timeout=10) as r:
        return json.load(r)["queue"]


def slow_steps(worker, seconds_per_step: float) -> None:
    """Make every denoising step of ``worker`` take at least ``seconds_per_step`` (real erase inside)."""
    real = worker._erase

    def slow(model, pixels, mask, options, *, progress):
        def step(*args):
            time.sleep(seconds_per_step)
            progress(*args)

        return real(model, pixels, mask, options, progress=step)

    worker._erase = slow


def test_closing_the_socket_of_a_running_erase_cancels_it(live_app):
    url, app = live_app
    worker = app.state.worker
    slow_steps(worker, 0.05)  # 300 steps: 15 s if nobody stops it
    body, content_type = multipart({"image": ("p.png", png_bytes(photo())), "mask": ("m.png", png_bytes(box_mask())),
                                    "options": (None, b'{"steps": 300}')})  # fmt: skip
    host, port = urlsplit(url).hostname, urlsplit(url).port
    client = socket.create_connection((host, port), timeout=10)
    client.sendall(f"POST /api/erase HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n".encode() + body)  # fmt: skip
    deadline = time.monotonic() + 30
    while health(url)["running"] == 0:
        assert time.monotonic() < deadline, "the erase never started"
        time.sleep(0.05)
    client.close()
    closed = time.monotonic()
    while health(url)["running"] == 1:
        assert time.monotonic() - closed < 3.0, "the worker is still busy with a request nobody waits for"
        time.sleep(0.05)
    queue = health(url)
    assert queue["completed"] == 0 and queue["failed"] == 0, queue
