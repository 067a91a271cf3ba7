"""``eradiff serve``: load one model, then serve the page and the HTTP API (parsing only).

The socket is bound before the URL is printed, so a busy port is a one-line error (exit 1) and
``--port 0`` picks a free port and prints it. Exit codes: 0 after Ctrl+C, 1 model or socket
error, 2 bad option.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import time

import typer

from eradiff.cli._common import CLIError, check_device_and_backend, fail, load_erasure_model, model_option
from eradiff.cli.hub import ModelSpecError, check_model_spec
from eradiff.cli.threads import apply_threads, check_threads, threads_option

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")


def serve_command(
    model: str | None = model_option(),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 exposes it to the network)."),
    port: int = typer.Option(8000, "--port", help="TCP port (0 picks a free one)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps."),
    queue: int = typer.Option(8, "--queue", help="Requests that may wait behind the running one; more get 503."),
    max_upload_mb: float = typer.Option(64.0, "--max-upload-mb", help="Largest accepted file, MiB (image and mask)."),
    max_pixels: int = typer.Option(
        50_000_000, "--max-pixels", help="Largest accepted width × height (checked before decoding)."
    ),
    backend: str = typer.Option(
        "torch", "--backend", help="UNet backend: torch | onnx (--model FILE.onnx) | trt (--model FILE.plan)."
    ),
    offline: bool = typer.Option(False, "--offline", help="Never contact the Hugging Face hub."),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in the default browser."),
    threads: int | None = threads_option(),
) -> None:
    """Serve a local web page to paint a mask and erase, plus an HTTP API (POST /api/erase)."""
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn
    except ImportError as exc:
        fail(f"eradiff serve needs the serve extra ({exc.name} is missing): pip install 'eradiff[serve]'", 1)
    try:
        check_device_and_backend(device, backend, model)
    except CLIError as exc:
        fail(str(exc), exc.code)
    if not 0 <= port <= 65535:
        fail(f"port must be in 0–65535, got {port}", 2)
    try:
        check_threads(threads)
    except ValueError as exc:
        fail(str(exc), 2)
    if backend == "torch":
        try:
            offline = check_model_spec(model, offline=offline)
        except ModelSpecError as exc:
            fail(str(exc), 1)

    from eradiff.serve.app import ServeSettings, create_app

    try:
        settings = ServeSettings(queue=queue, max_upload_mb=max_upload_mb, max_pixels=max_pixels, backend=backend,
                                 allowed_hosts=_allowed_hosts(host))  # fmt: skip
    except ValueError as exc:
        fail(str(exc), 2)
    apply_threads(threads)
    model_obj, device_name, seconds = _load(model, device=device, backend=backend, offline=offline)
    sock = _bind(host, port)
    url = _url(host, sock.getsockname()[1])
    app = create_app(model_obj, settings, device=device_name)
    print(f"eradiff serve: {url}", flush=True)
    print(f"model {model_obj.name} ({model_obj.family}, {backend} on {device_name}, loaded in {seconds:.1f} s); "
          "Ctrl+C to stop", flush=True)  # fmt: skip
    if not _is_loopback(host):
        print("warning: listening beyond this computer; the page has no login", file=sys.stderr, flush=True)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()


def _load(spec: str | None, *, device: str, backend: str, offline: bool):
    from rich.console import Console

    t0 = time.perf_counter()
    with Console(stderr=True).status("loading model…"):
        try:
            model, dev, _ = load_erasure_model(spec, backend=backend, device=device, offline=offline)
        except CLIError as exc:
            fail(str(exc), exc.code)
    return model, str(dev), time.perf_counter() - t0


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        hint = "; pass another --port" if getattr(exc, "errno", None) in (98, 48, 10048) else ""
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}", 1)
    return sock


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _allowed_hosts(host: str) -> list[str] | None:
    """Host headers accepted on a loopback address (guards against DNS rebinding); None = any."""
    if not _is_loopback(host):
        return None
    return ["localhost", "127.0.0.1", "[::1]", host if ":" not in host or host.startswith("[") else f"[{host}]"]


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"
