"""The HTTP app of ``eradiff serve``: the page, the erase API and job progress (FastAPI).

| route                          | what                                                                |
| ------------------------------ | ------------------------------------------------------------------- |
| ``GET /``                      | the page (``eradiff/serve/static/``)                                |
| ``GET /api/health``            | ``{"status": "ok", "queue": {...}}``; 503 if the worker died         |
| ``GET /api/model``             | name, family, native resolution, backend, device, defaults, limits |
| ``POST /api/erase``            | multipart image + mask + options → the erased image (input format)  |
| ``POST /api/jobs``             | the same body → 202 ``{"id": ...}``: queued, followed below         |
| ``GET /api/jobs/{id}``         | the job's state, progress, seed, timings (JSON)                     |
| ``GET /api/jobs/{id}/events``  | the same as Server-Sent Events until the job ends                   |
| ``GET /api/jobs/{id}/result``  | the erased image once done (409 before, the job's error after one)  |
| ``DELETE /api/jobs/{id}``      | cancel a waiting or running job                                    |
| ``GET /api/openapi.json``      | the OpenAPI schema (no docs page: it would need a CDN the CSP bars)  |

Every error is JSON ``{"error": "one line", "code": "..."}`` (codes in :mod:`eradiff.serve.inputs`;
``queue_full`` is a 503 with Retry-After). Image replies carry ``X-EraDiff-Seed``,
``X-EraDiff-Windows`` and ``Server-Timing`` (decode, queue, erase, encode, total in ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import numpy as np
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

import eradiff
from eradiff.pipeline.erase import EraseOptions, EraseResult
from eradiff.pipeline.io import LoadedImage, encode_image
from eradiff.serve.inputs import (
    MEDIA_TYPES,
    OPTION_TYPES,
    ApiError,
    decode_upload,
    download_name,
    drain,
    max_body_bytes,
    parse_options,
    read_multipart,
)
from eradiff.serve.worker import Job, ModelWorker, QueueFull

STATIC = resources.files("eradiff.serve") / "static"
DEFAULT_MAX_UPLOAD_MB = 64.0
DEFAULT_MAX_PIXELS = 50_000_000
CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@dataclass
class ServeSettings:
    """Limits and defaults of one server.

    Attributes:
        queue: jobs that may wait behind the running one (more get 503), ≥ 1.
        max_upload_mb: limit per uploaded file, MiB.
        max_pixels: limit on width × height of each upload, checked before decoding.
        defaults: the erase options a request starts from.
        backend: UNet backend name reported by ``/api/model`` (torch, onnx, trt).
        keep_jobs: finished jobs kept for ``GET /api/jobs/{id}/result`` (oldest dropped first).
        job_ttl: seconds a finished job is kept.
        tmp_dir: parent of the per-request temporary folders (None = a fresh folder under the
            system's, removed at shutdown).
        allowed_hosts: Host header values accepted (DNS-rebinding guard); None = any.
    """

    queue: int = 8
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    max_pixels: int = DEFAULT_MAX_PIXELS
    defaults: EraseOptions = field(default_factory=EraseOptions)
    backend: str = "torch"
    keep_jobs: int = 16
    job_ttl: float = 600.0
    tmp_dir: str | Path | None = None
    allowed_hosts: list[str] | None = None

    def __post_init__(self) -> None:
        if self.queue < 1:
            raise ValueError(f"queue must be ≥ 1, got {self.queue}")
        if not self.max_upload_mb > 0:
            raise ValueError(f"max_upload_mb must be > 0, got {self.max_upload_mb}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be ≥ 1, got {self.max_pixels}")

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)


class JobStore:
    """Jobs by id: the unfinished ones, plus finished ones until ``keep`` or ``ttl`` drops them."""

    def __init__(self, *, keep: int, ttl: float) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self.keep, self.ttl = keep, ttl

    def add(self, job: Job) -> None:
        self.prune()
        self._jobs[job.id] = job

    def get(self, job_id: str) -> Job:
        self.prune()
        job = self._jobs.get(job_id)
        if job is None:
            raise ApiError(404, "not_found", "no such job (finished jobs are kept for a limited time)")
        return job

    def prune(self) -> None:
        now = time.monotonic()
        finished = [j for j in self._jobs.values() if j.final]
        for job in finished:
            if job.finished is not None and now - job.finished > self.ttl:
                del self._jobs[job.id]
        finished = [j for j in self._jobs.values() if j.final]
        for job in finished[: max(0, len(finished) - self.keep)]:
            del self._jobs[job.id]

    def __len__(self) -> int:
        return len(self._jobs)


@dataclass
class _Server:
    """What the handlers share, kept on ``app.state.server``."""

    model: Any
    settings: ServeSettings
    worker: ModelWorker
    jobs: JobStore
    device: str | None
    decode_limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(2))
    tmp: str | None = None
    started: float = field(default_factory=time.time)


def create_app(model: Any, settings: ServeSettings | None = None, *, device: str | None = None) -> FastAPI:
    """Build the app around one loaded model (its worker starts and stops with the app's lifespan).

    Args:
        model: a loaded :class:`~eradiff.models.family.ErasureModel`.
        settings: limits and defaults (:class:`ServeSettings`).
        device: device name reported by ``/api/model`` (default: the model's).

    Returns:
        The FastAPI app; serve it with uvicorn (``eradiff serve``) or an in-process client.
    """
    settings = settings or ServeSettings()
    worker = ModelWorker(model, capacity=settings.queue)
    jobs = JobStore(keep=settings.keep_jobs, ttl=settings.job_ttl)
    server = _Server(model=model, settings=settings, worker=worker, jobs=jobs, device=device)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        owned = settings.tmp_dir is None
        server.tmp = tempfile.mkdtemp(prefix="eradiff-serve-") if owned else str(settings.tmp_dir)
        worker.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(worker.stop)
            if owned:
                shutil.rmtree(server.tmp, ignore_errors=True)

    # no Swagger/ReDoc page: FastAPI loads them from a CDN, which the CSP (and a local tool) forbids
    app = FastAPI(title="eradiff", version=eradiff.__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url="/api/openapi.json")  # fmt: skip
    app.state.server = server
    app.state.worker, app.state.jobs, app.state.settings = worker, jobs, settings
    app.middleware("http")(_guard)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


def _server(request: Request) -> _Server:
    return request.app.state.server


# -- middleware and errors --------------------------------------------------------------------


async def _guard(request: Request, call_next):
    settings = _server(request).settings
    if settings.allowed_hosts is not None and _host(request) not in settings.allowed_hosts:
        return _error(ApiError(400, "bad_host", "unexpected Host header (use the URL eradiff serve printed)"))
    if request.method in ("POST", "DELETE", "PUT", "PATCH") and not _same_origin(request):
        return _error(ApiError(403, "cross_origin", "requests from other web sites are refused"))
    response = await call_next(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if response.headers.get("content-type", "").startswith("text/html"):
        response.headers["Content-Security-Policy"] = CSP
    return response


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return _error(exc)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, f"http_{exc.status_code}")
    return _error(ApiError(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {})))


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return _error(ApiError(422, "bad_request", "invalid request"))


# -- routes -----------------------------------------------------------------------------------

router = APIRouter()


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(str(STATIC / "index.html"), media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/api/health")
async def health(request: Request) -> JSONResponse:
    server = _server(request)
    ok = server.worker.alive
    body = {"status": "ok" if ok else "error", "queue": server.worker.stats(), "jobs_kept": len(server.jobs),
            "uptime_s": round(time.time() - server.started, 1)}  # fmt: skip
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/api/model")
async def model_info(request: Request) -> dict[str, Any]:
    server = _server(request)
    model, settings = server.model, server.settings
    resolved = settings.defaults.for_model(model)  # steps=None → the model's own default
    defaults = {k: getattr(resolved, k) for k in OPTION_TYPES if hasattr(resolved, k)}
    return {
        "name": model.name,
        "family": model.family,
        "native_size": model.native_size,
        "size_multiple": model.size_multiple,
        "backend": settings.backend,
        "device": server.device or str(model.device),
        "dtype": str(model.dtype).removeprefix("torch."),
        "version": eradiff.__version__,
        "defaults": defaults,
        "options": {k: what for k, (_, what) in OPTION_TYPES.items()},
        "limits": {"max_upload_bytes": settings.max_file_bytes, "max_pixels": settings.max_pixels,
                   "queue": settings.queue},
        "formats": list(MEDIA_TYPES),
    }  # fmt: skip


async def _accept(request: Request) -> Job:
    """Read, check and decode an erase request, then queue it as a job."""
    server = _server(request)
    worker, settings = server.worker, server.settings
    if not worker.has_room():  # answered before decoding, after reading the (bounded) body
        await drain(request.stream(), limit=max_body_bytes(settings.max_file_bytes))
        raise _queue_full(QueueFull(worker.capacity, worker.retry_after()))
    t0 = time.monotonic()
    parts = await read_multipart(
        request.headers.get("content-type"), request.headers.get("content-length"), request.stream(),
        max_file_bytes=settings.max_file_bytes,
    )  # fmt: skip
    options = parse_options(
        parts["options"].data if "options" in parts else None, defaults=settings.defaults,
        seed=secrets.randbelow(2**31),
    )  # fmt: skip
    async with server.decode_limiter:
        if not worker.has_room():  # checked again: decoding a large photo is not free
            raise _queue_full(QueueFull(worker.capacity, worker.retry_after()))
        upload = await anyio.to_thread.run_sync(
            lambda: decode_upload(parts["image"], parts["mask"], max_pixels=settings.max_pixels, tmp_root=server.tmp)
        )
    filename = parts["image"].filename
    parts.clear()
    fmt = options.format or upload.image.format
    like = LoadedImage(pixels=np.empty((0, 0), np.uint8), format=fmt, exif=upload.image.exif,
                       icc_profile=upload.image.icc_profile)  # fmt: skip

    def finish(result: EraseResult) -> bytes:
        return encode_image(result.image, fmt, like=like)

    job = Job(pixels=upload.image.pixels, mask=upload.mask, options=options.erase, finish=finish)
    job.meta.update(format=fmt, filename=download_name(filename, fmt), warnings=upload.warnings,
                    decode_s=time.monotonic() - t0, random_seed=options.random_seed)  # fmt: skip
    try:
        worker.submit(job)
    except QueueFull as exc:
        raise _queue_full(exc) from exc
    return job


@router.post("/api/erase")
async def erase_sync(request: Request) -> Response:
    job = await _accept(request)
    async with anyio.create_task_group() as group:
        group.start_soon(_cancel_when_gone, request, job, _server(request).worker)
        await job.wait()
        group.cancel_scope.cancel()
    if job.meta.get("client_gone"):
        raise ApiError(499, "client_closed", "the client closed the connection")
    return _result(job)


@router.post("/api/jobs", status_code=202)
async def create_job(request: Request) -> JSONResponse:
    job = await _accept(request)
    server = _server(request)
    server.jobs.add(job)
    body = job.snapshot(server.worker.position(job))
    body.update(events=f"/api/jobs/{job.id}/events", result=f"/api/jobs/{job.id}/result")
    return JSONResponse(body, status_code=202)


@router.get("/api/jobs/{job_id}")
async def job_status(job_id: str, request: Request) -> dict[str, Any]:
    server = _server(request)
    return _snapshot(server.jobs.get(job_id), server.worker)


@router.delete("/api/jobs/{job_id}")
async def job_cancel(job_id: str, request: Request) -> dict[str, Any]:
    server = _server(request)
    job = server.jobs.get(job_id)
    server.worker.cancel(job)
    return _snapshot(job, server.worker)


@router.get("/api/jobs/{job_id}/events")
async def job_events(job_id: str, request: Request) -> StreamingResponse:
    server = _server(request)
    job = server.jobs.get(job_id)

    async def stream():
        yield "retry: 1000\n\n"
        while True:
            version = job.version  # read before the snapshot: no later change is missed
            final = job.final  # likewise: a final snapshot is always the last event
            yield f"data: {json.dumps(_snapshot(job, server.worker))}\n\n"
            if final:
                return
            while not await job.changed(15.0, since=version):
                yield ": keep-alive\n\n"
            await asyncio.sleep(0.02)  # at most ~50 events a second, however fast the steps

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


@router.get("/api/jobs/{job_id}/result")
async def job_result(job_id: str, request: Request) -> Response:
    job = _server(request).jobs.get(job_id)
    if not job.final:
        raise ApiError(409, "not_ready", f"the job is {job.state}; follow /api/jobs/{job.id}/events")
    return _result(job)


def _snapshot(job: Job, worker: ModelWorker) -> dict[str, Any]:
    body = job.snapshot(worker.position(job))
    body["warnings"] = job.meta.get("warnings", [])
    if job.state == "done":
        body["filename"] = job.meta.get("filename")
    return body


async def _cancel_when_gone(request: Request, job: Job, worker: ModelWorker) -> None:
    """Cancel ``job`` as soon as its client disconnects (its queue slot or its steps are freed).

    The body has been read, so the next ASGI message is the disconnect; awaiting it wakes at once,
    unlike polling ``request.is_disconnected()``, which never sees it behind an HTTP middleware.
    """
    while (await request.receive())["type"] != "http.disconnect":
        pass
    job.meta["client_gone"] = True
    worker.cancel(job)


def _result(job: Job) -> Response:
    if job.state != "done" or job.result is None:
        error = job.error
        if error is None:
            raise ApiError(500, "internal", f"the job ended as {job.state} without a result")
        raise ApiError(error.status, error.code, error.message)
    timings = {"decode": job.meta.get("decode_s", 0.0), **job.timings()}
    timings["total"] = sum(timings.values())
    headers = {
        "Content-Disposition": f'inline; filename="{job.meta["filename"]}"',
        "X-EraDiff-Seed": str(job.options.seed),
        "X-EraDiff-Windows": str(len((job.report or {}).get("windows", []))),
        "X-EraDiff-Warnings": json.dumps(job.meta.get("warnings", []), ensure_ascii=True),
        "Server-Timing": ", ".join(f"{k};dur={v * 1000:.1f}" for k, v in timings.items()),
        "Cache-Control": "no-store",
    }
    return Response(job.result, media_type=MEDIA_TYPES[job.meta["format"]], headers=headers)


def _error(exc: ApiError) -> JSONResponse:
    return JSONResponse({"error": exc.message, "code": exc.code}, status_code=exc.status, headers=exc.headers)


def _queue_full(exc: QueueFull) -> ApiError:
    return ApiError(503, "queue_full", str(exc), headers={"Retry-After": str(exc.retry_after)})


def _host(request: Request) -> str:
    """The Host header without its port (IPv6 literals keep their brackets)."""
    host = request.headers.get("host", "")
    return host.rsplit(":", 1)[0] if host.rsplit(":", 1)[-1].isdigit() and not host.endswith("]") else host


def _same_origin(request: Request) -> bool:
    """False when a browser says the request comes from another origin: scheme, host or port (CSRF guard)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    parts = urlsplit(origin)
    return parts.scheme == request.url.scheme and parts.netloc == request.headers.get("host", "")


__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_MAX_UPLOAD_MB", "JobStore", "ServeSettings", "create_app"]
