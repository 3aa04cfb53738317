"""Load check of ``swinir serve``: concurrent clients get correct PNGs or clean refusals, nothing else.

Starts the real command (``python -m swinir.cli serve``) on a free loopback port with a tiny random model,
then runs two rounds of concurrent requests, each a distinct small image:

* burst: every request at once, no retries. Each answer must be a PNG equal, pixel for pixel, to a local
  ``swinir.restore`` of the same image, or a 503 with ``Retry-After`` and a JSON ``detail``. Anything else
  (another status, a wrong or broken image, a dropped connection, a timeout) counts as lost.
* retrying: the same requests, each client retrying after ``Retry-After`` on 503: all must end correct.

Prints throughput and latency percentiles and writes ``benchmarks/results/load_check.md``. Bounded: at most
``--requests`` requests per round, and ``--timeout`` seconds overall. Loopback only.

    python benchmarks/load_check.py                     # 50 requests, 1 worker, queue 8
    python benchmarks/load_check.py --queue 64          # a queue that admits everyone
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import io
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image

import swinir

HOST = "127.0.0.1"  # never anything else: this script only ever talks to itself
RESULTS = Path(__file__).resolve().parent / "results" / "load_check.md"


@dataclass
class Outcome:
    index: int
    kind: str  # ok | refused | lost
    status: int | None
    seconds: float
    attempts: int
    note: str = ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def tiny_model(path: Path) -> swinir.SwinIR:
    torch.manual_seed(0)
    config = swinir.ModelConfig(upscale=2, img_size=16, window_size=8, depths=(2,), embed_dim=12, num_heads=(2,),
                                upsampler="pixelshuffledirect")
    swinir.save_safetensors(path, config.build(), config, {"task": "sr"})
    return swinir.load(path)


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def start_server(weights: Path, port: int, args: argparse.Namespace, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "swinir.cli", "serve", "--host", HOST, "--port", str(port), "--no-bundled",
               "--weights", f"tiny={weights}", "--workers", str(args.workers), "--queue", str(args.queue),
               "--log-level", "warning"]
    with open(log, "wb") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)


async def wait_ready(url: str, server: subprocess.Popen, log: Path, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit(f"the server exited ({server.returncode}):\n{log.read_text()}")
            try:
                if (await client.get(url + "/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"the server did not answer /healthz within {limit} s:\n{log.read_text()}")


async def one_request(client: httpx.AsyncClient, url: str, index: int, data: bytes, expected: np.ndarray,
                      retry: bool, deadline: float) -> Outcome:
    started = time.perf_counter()
    attempts = 0
    while True:
        attempts += 1
        try:
            response = await client.post(url + "/v1/restore", files={"image": (f"{index}.png", data, "image/png")},
                                         data={"task": "tiny", "precision": "fp32"},
                                         timeout=max(1.0, deadline - time.monotonic()))
        except httpx.HTTPError as err:
            return Outcome(index, "lost", None, time.perf_counter() - started, attempts, f"{type(err).__name__}")
        elapsed = time.perf_counter() - started
        if response.status_code == 200:
            try:
                got = np.asarray(Image.open(io.BytesIO(response.content)))
            except Exception as err:
                return Outcome(index, "lost", 200, elapsed, attempts, f"undecodable PNG: {err}")
            if response.headers.get("content-type") != "image/png" or not np.array_equal(got, expected):
                return Outcome(index, "lost", 200, elapsed, attempts, "pixels differ from a local restore")
            return Outcome(index, "ok", 200, elapsed, attempts)
        if response.status_code == 503 and "retry-after" in response.headers:
            detail = response.json().get("detail")
            if not isinstance(detail, str):
                return Outcome(index, "lost", 503, elapsed, attempts, "503 without a detail line")
            wait = float(response.headers["retry-after"])
            if not retry or time.monotonic() + wait > deadline:
                return Outcome(index, "refused", 503, elapsed, attempts)
            await asyncio.sleep(wait)
            continue
        return Outcome(index, "lost", response.status_code, elapsed, attempts, response.text[:120])


async def run_round(url: str, images: list[bytes], expected: list[np.ndarray], retry: bool,
                    deadline: float) -> tuple[list[Outcome], float]:
    limits = httpx.Limits(max_connections=len(images), max_keepalive_connections=len(images))
    async with httpx.AsyncClient(limits=limits) as client:
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(one_request(client, url, i, data, expected[i], retry, deadline)
                                          for i, data in enumerate(images)))
        return list(outcomes), time.perf_counter() - started


def percentiles(values: list[float]) -> str:
    if not values:
        return "- | - | -"
    p50, p90, p99 = np.percentile(np.array(values) * 1000, [50, 90, 99])
    return f"{p50:.0f} | {p90:.0f} | {p99:.0f}"


def table(rounds: list[tuple[str, list[Outcome], float]]) -> str:
    lines = ["| round | requests | ok | refused (503) | lost | wall s | ok/s | ok p50 ms | ok p90 ms | ok p99 ms "
             "| 503 p50 ms | max attempts |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, outcomes, wall in rounds:
        ok = [o for o in outcomes if o.kind == "ok"]
        refused = [o.seconds * 1000 for o in outcomes if o.kind == "refused"]
        lost = sum(o.kind == "lost" for o in outcomes)
        refused_p50 = f"{np.median(refused):.0f}" if refused else "-"
        lines.append(f"| {name} | {len(outcomes)} | {len(ok)} | {len(refused)} | {lost} | {wall:.2f} | "
                     f"{len(ok) / wall:.1f} | {percentiles([o.seconds for o in ok])} | {refused_p50} | "
                     f"{max(o.attempts for o in outcomes)} |")
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {len(os.sched_getaffinity(0))} cores available, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50, help="concurrent requests per round (at most 500)")
    parser.add_argument("--size", type=int, default=32, help="side of the square test images (input pixels)")
    parser.add_argument("--workers", type=int, default=1, help="server --workers")
    parser.add_argument("--queue", type=int, default=8, help="server --queue")
    parser.add_argument("--timeout", type=float, default=180, help="overall limit in seconds")
    parser.add_argument("--output", type=Path, default=RESULTS, help="the markdown report to write")
    args = parser.parse_args()
    args.requests = max(1, min(args.requests, 500))
    deadline = time.monotonic() + args.timeout

    with tempfile.TemporaryDirectory() as tmp:
        weights, log = Path(tmp) / "tiny_x2.safetensors", Path(tmp) / "server.log"
        model = tiny_model(weights)
        rng = np.random.default_rng(0)
        arrays = [rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8) for _ in range(args.requests)]
        images = [png(a) for a in arrays]
        expected = [swinir.restore(model, a) for a in arrays]
        port = free_port()
        url = f"http://{HOST}:{port}"
        server = start_server(weights, port, args, log)
        try:
            asyncio.run(wait_ready(url, server, log))
            rounds = []
            for name, retry in (("burst", False), ("retrying", True)):
                outcomes, wall = asyncio.run(run_round(url, images, expected, retry, deadline))
                rounds.append((name, outcomes, wall))
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()

    lost = [o for _, outcomes, _ in rounds for o in outcomes if o.kind == "lost"]
    unfinished = [o for o in rounds[1][1] if o.kind != "ok"]
    verdict = "PASS" if not lost and not unfinished else "FAIL"
    report = "\n".join([
        "# Load check: `swinir serve`",
        "",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- machine: {machine()}",
        f"- server: `swinir serve --workers {args.workers} --queue {args.queue}` on {HOST}, tiny x2 model "
        "(embed 12, one block of depth 2), fp32, CPU",
        f"- load: {args.requests} concurrent clients per round, each a distinct {args.size}x{args.size} RGB PNG; "
        "every 200 compared pixel for pixel with a local `swinir.restore`",
        "- burst: no retries (refusals expected beyond workers + queue); retrying: clients retry after "
        "`Retry-After` on 503",
        "- latency: from sending to the complete answer, per client (for retrying clients, including waits)",
        "",
        table(rounds),
        "",
        f"Verdict: **{verdict}**: {len(lost)} lost or corrupted answers; "
        f"{len(unfinished)} retrying clients without a result.",
        "",
        "Produced by `python benchmarks/load_check.py`.",
        "",
    ])
    print(report)
    for o in lost:
        print(f"lost: request {o.index}: status {o.status}: {o.note}", file=sys.stderr)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(f"wrote {args.output}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
