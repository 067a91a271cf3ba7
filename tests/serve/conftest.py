"""Fixtures for the serve tests: a tiny pixel model, in-process clients and a live uvicorn server."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eradiff.models.loading import load_model
from eradiff.testing import cached, tiny_pixel_file

sys.path.insert(0, str(Path(__file__).resolve().parent))  # serve_helpers (tests run in importlib mode)


@pytest.fixture(scope="session")
def serve_model(tmp_path_factory):
    """The tiny random pixel model (shared file with the other test folders)."""
    return load_model(cached(tmp_path_factory.getbasetemp() / "tiny-pixel.safetensors", tiny_pixel_file))


@pytest.fixture
def make_client(serve_model, tmp_path):
    """``make_client(**settings)`` → a started TestClient (lifespan run); closed after the test."""
    from fastapi.testclient import TestClient

    from eradiff.serve.app import ServeSettings, create_app

    clients = []

    def make(model=None, **settings):
        settings.setdefault("tmp_dir", tmp_path / "serve-tmp")
        (settings["tmp_dir"]).mkdir(exist_ok=True)
        client = TestClient(create_app(model or serve_model, ServeSettings(**settings)), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture
def live_app(serve_model, tmp_path) -> Iterator[tuple[str, object]]:
    """A real uvicorn server on 127.0.0.1 (free port) in a thread; yields its base URL and the app."""
    import uvicorn

    from eradiff.serve.app import ServeSettings, create_app

    (tmp_path / "live-tmp").mkdir()
    app = create_app(serve_model, ServeSettings(queue=4, tmp_dir=tmp_path / "live-tmp"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(15)
    sock.close()


@pytest.fixture
def live_server(live_app) -> str:
    """The base URL of :func:`live_app`'s server."""
    return live_app[0]
