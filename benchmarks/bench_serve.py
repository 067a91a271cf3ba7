"""Load test of ``eradiff serve``: N concurrent clients against a real uvicorn on 127.0.0.1.

Starts ``eradiff serve`` in a subprocess (a tiny random pixel model unless ``--model``), warms it
up, then runs ``--rounds`` rounds of ``--clients`` threads that each POST the example photo and
mask to ``/api/erase`` in a loop for ``--seconds``. A client that gets 503 (queue full) waits
``--backoff`` seconds (not the Retry-After, to keep the queue under pressure) and tries again.
After each round the queue is left to drain and the server's resident memory is read.

Checks (printed, and in the JSON): no request lost (every request sent got an HTTP answer: no
connection error, no timeout), every answer an image of the input's size and format or a 503 with
Retry-After and a JSON body, the server's completed count equal to the images received, and the
server's RSS after the last round within ``--rss-tolerance-mib`` of its RSS after the first
(the first round is the warm-up of allocator arenas and caches).

    python benchmarks/bench_serve.py                          # 8 clients, queue 2, 3 × 20 s
    python benchmarks/bench_serve.py --clients 16 --seconds 60 --queue 4
    python benchmarks/bench_serve.py --clients 4 --seconds 5 --rounds 2 --out /tmp/serve.json

Writes ``benchmarks/results/bench_serve.json`` and prints a table (timings are this machine's).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass
class Outcome:
    """One request as a client saw it."""

    status: int | None  # None: no answer (connection error or timeout) = lost
    seconds: float
    kind: str  # "image", "busy" (503 as specified), "bad" (anything else), "lost"
    detail: str = ""


@dataclass
class Round:
    index: int
    seconds: float
    outcomes: list[Outcome] = field(default_factory=list)
    rss_mib: float = 0.0
    server_completed: int = 0

    def count(self, kind: str) -> int:
        return sum(o.kind == kind for o in self.outcomes)

    def summary(self) -> dict:
        image_s = [o.seconds for o in self.outcomes if o.kind == "image"]
        busy_s = [o.seconds for o in self.outcomes if o.kind == "busy"]
        return {
            "round": self.index,
            "requests": len(self.outcomes),
            "images": self.count("image"),
            "busy_503": self.count("busy"),
            "bad": self.count("bad"),
            "lost": self.count("lost"),
            "images_per_s": round(self.count("image") / self.seconds, 3),
            "image_latency_p50_s": round(statistics.median(image_s), 3) if image_s else None,
            "image_latency_p95_s": round(_quantile(image_s, 0.95), 3) if image_s else None,
            "busy_latency_p50_s": round(statistics.median(busy_s), 4) if busy_s else None,
            "server_completed": self.server_completed,
            "rss_after_mib": round(self.rss_mib, 1),
            "bad_details": sorted({o.detail for o in self.outcomes if o.kind in ("bad", "lost")})[:10],
        }


def _quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def start_server(model: str, queue: int, steps: int) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [sys.executable, "-m", "eradiff.cli", "serve", "--model", model, "--port", "0", "--queue", str(queue)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    found = re.match(r"eradiff serve: (http://\S+/)", line)
    if not found:
        proc.kill()
        raise RuntimeError(f"eradiff serve did not start: {line!r} {proc.stderr.read()[-2000:]}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipes from filling up
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    return proc, found.group(1).rstrip("/")


def client_loop(url: str, files: dict, options: str, deadline: float, backoff: float, expect: tuple,
                out: list[Outcome]) -> None:  # fmt: skip
    import httpx
    import numpy as np
    from PIL import Image

    with httpx.Client(timeout=300) as client:
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            try:
                r = client.post(url + "/api/erase", files=files, data={"options": options})
            except httpx.HTTPError as exc:
                out.append(Outcome(None, time.monotonic() - t0, "lost", f"{type(exc).__name__}: {exc}"[:200]))
                continue
            seconds = time.monotonic() - t0
            if r.status_code == 200:
                try:
                    a = np.asarray(Image.open(io.BytesIO(r.content)))
                    ok = r.headers["content-type"] == expect[0] and a.shape == expect[1]
                except Exception as exc:  # noqa: BLE001 - reported as a bad answer
                    ok, a = False, exc
                out.append(Outcome(200, seconds, "image" if ok else "bad", "" if ok else f"200 but {a!r}"[:200]))
            elif r.status_code == 503:
                ok = r.headers.get("retry-after", "").isdigit() and r.json().get("code") == "queue_full"
                out.append(Outcome(503, seconds, "busy" if ok else "bad", "" if ok else r.text[:200]))
                time.sleep(backoff)
            else:
                out.append(Outcome(r.status_code, seconds, "bad", f"{r.status_code} {r.text[:200]}"))


def wait_idle(url: str, timeout: float = 600) -> dict:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        health = httpx.get(url + "/api/health", timeout=30).json()
        if health["queue"]["running"] == 0 and health["queue"]["waiting"] == 0:
            return health
        if time.monotonic() > deadline:
            raise RuntimeError(f"the queue did not drain: {health}")
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=20.0, help="length of one round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--queue", type=int, default=2, help="eradiff serve --queue")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--backoff", type=float, default=0.1, help="seconds a client waits after a 503")
    p.add_argument("--model", default=None, help="model spec (default: a tiny random pixel model)")
    p.add_argument("--rss-tolerance-mib", type=float, default=64.0)
    p.add_argument("--out", type=Path, default=HERE / "results" / "bench_serve.json")
    args = p.parse_args(argv)

    import numpy as np
    from PIL import Image

    photo, mask = ROOT / "examples" / "photo.jpg", ROOT / "examples" / "mask.png"
    shape = np.asarray(Image.open(photo)).shape
    files = {"image": ("photo.jpg", photo.read_bytes(), "image/jpeg"), "mask": ("mask.png", mask.read_bytes())}
    options = json.dumps({"steps": args.steps, "seed": 1})
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from eradiff.testing import tiny_pixel_file

            model = str(tiny_pixel_file(Path(tmp) / "tiny-pixel.safetensors"))
        proc, url = start_server(model, args.queue, args.steps)
        try:
            import httpx

            for _ in range(3):  # warm-up
                r = httpx.post(url + "/api/erase", files=files, data={"options": options}, timeout=300)
                r.raise_for_status()
            rss_start = rss_mib(proc.pid)
            rounds = []
            for index in range(1, args.rounds + 1):
                outcomes: list[Outcome] = []
                t0 = time.monotonic()
                deadline = t0 + args.seconds
                threads = [
                    threading.Thread(
                        target=client_loop,
                        args=(url, files, options, deadline, args.backoff, ("image/jpeg", shape), outcomes),
                    )  # fmt: skip
                    for _ in range(args.clients)
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                elapsed = time.monotonic() - t0
                health = wait_idle(url)
                rnd = Round(index=index, seconds=elapsed, outcomes=outcomes, rss_mib=rss_mib(proc.pid),
                            server_completed=health["queue"]["completed"])  # fmt: skip
                rounds.append(rnd)
            completed_before = 3
        finally:
            proc.terminate()
            proc.wait(30)

    summaries = [r.summary() for r in rounds]
    images = sum(s["images"] for s in summaries)
    server_images = rounds[-1].server_completed - completed_before
    rss_growth = rounds[-1].rss_mib - rounds[0].rss_mib
    checks = {
        "no_request_lost": all(s["lost"] == 0 for s in summaries),
        "every_answer_image_or_503": all(s["bad"] == 0 for s in summaries),
        "server_completed_equals_images_received": server_images == images,
        "some_503_under_overload": args.clients <= args.queue + 1 or any(s["busy_503"] > 0 for s in summaries),
        "rss_stable": abs(rss_growth) <= args.rss_tolerance_mib,
    }
    result = {
        "benchmark": "bench_serve",
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "settings": {
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "model": args.model or "tiny random pixel model (eradiff.testing.tiny_pixel_file)",
            "image": f"examples/photo.jpg {shape[1]}×{shape[0]} + examples/mask.png",
        },  # fmt: skip
        "rss_mib": {
            "after_warmup": round(rss_start, 1),
            "after_first_round": round(rounds[0].rss_mib, 1),
            "after_last_round": round(rounds[-1].rss_mib, 1),
            "growth_first_to_last": round(rss_growth, 1),
        },  # fmt: skip
        "rounds": summaries,
        "checks": checks,
        "passed": all(checks.values()),
    }
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if result["passed"] else 1


def print_table(result: dict) -> None:
    s = result["settings"]
    print(f"eradiff serve load test: {s['clients']} clients × {s['seconds']} s × {s['rounds']} rounds, "
          f"queue {s['queue']}, {s['steps']} steps, {s['image']}")  # fmt: skip
    head = ("round", "requests", "images", "503", "bad", "lost", "img/s", "p50 s", "p95 s", "503 p50 s", "RSS MiB")
    rows = [
        (r["round"], r["requests"], r["images"], r["busy_503"], r["bad"], r["lost"], r["images_per_s"],
         r["image_latency_p50_s"], r["image_latency_p95_s"], r["busy_latency_p50_s"], r["rss_after_mib"])
        for r in result["rounds"]
    ]  # fmt: skip
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    for row in (head, *rows):
        print("  ".join(str(x).rjust(w) for x, w in zip(row, widths, strict=True)))
    m = result["rss_mib"]
    print(f"server RSS: {m['after_warmup']} MiB after warm-up, {m['after_first_round']} after round 1, "
          f"{m['after_last_round']} after the last (growth {m['growth_first_to_last']:+} MiB)")  # fmt: skip
    for name, ok in result["checks"].items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")


if __name__ == "__main__":
    sys.exit(main())
