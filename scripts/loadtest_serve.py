"""Load test for ``frs serve``: concurrent clients asking queries about one cached scene, over loopback.

Starts the server as a child process on 127.0.0.1 (a free port) with the chosen reasoner,
uploads one scene (the "kitchen" demo twin as JSON) once, then ``--clients`` threads each send
``--requests`` requests of ``--queries`` queries about that scene by its ``scene_id``. Reports
requests/s, queries/s, p50/p99 request latency, errors, and the server's peak RSS plus its RSS
after warm-up and at the end (memory growth). Bounded: ``--max-seconds`` stops sending.

    python scripts/loadtest_serve.py                               # 4 clients x 50 requests x 5 queries, echo reasoner
    python scripts/loadtest_serve.py --reasoner default --requests 2   # the embedded SmolLM2 student

``--reasoner echo`` is the scripted protocol-valid reasoner of :mod:`fastreasonseg.serve.testing`:
it measures the service (HTTP, multipart, queue, cache, tools, masks) without model time.

Measured on this project's 2-core CPU while other jobs ran (load average ~7, so the model
figures are pessimistic), 2026-11-24:

- echo, 4 clients x 50 requests x 5 queries (defaults): 200/200 ok, 106.5 req/s (533 queries/s),
  p50 0.023 s, p99 0.079 s, server peak RSS 63.9 MB, RSS growth after warm-up 0.0 MB.
- default (SmolLM2-135M, llama.cpp), ``--clients 4 --requests 5 --queries 1 --timeout 1200``:
  20/20 ok, 0.14 req/s (~7 s per query, requests run one at a time), p50 31.9 s, p99 45.3 s
  (mostly queue wait behind the other 3 clients), peak RSS 320.7 MB, growth 0.1 MB.
  With 5 queries per request and the default 120 s timeout, 7 of 8 requests got 504: the
  timeout counts queue wait, so size ``--timeout`` to clients x queries x seconds per query.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time


def serve_only(reasoner: str, port: int, timeout_s: float, lora_mode: str) -> None:
    """Child process: run the service with ``reasoner`` on 127.0.0.1:port until killed."""
    import logging

    import uvicorn

    from fastreasonseg.reasoning.engine import RolloutEngine
    from fastreasonseg.serve import ServeConfig, build_service, create_app
    from fastreasonseg.serve.service import SegmentService
    from fastreasonseg.serve.testing import BoxPerceiver, EchoBackend

    logging.basicConfig(level=logging.WARNING)
    config = ServeConfig(port=port, request_timeout_s=timeout_s)
    if reasoner == "echo":
        service = SegmentService(RolloutEngine(EchoBackend()), config, perceiver=BoxPerceiver(), reasoner_name="echo")
    else:
        from fastreasonseg.reasoning.loader import ReasonerConfig

        service = build_service(config, ReasonerConfig(spec=reasoner, lora_mode=lora_mode))
    uvicorn.run(create_app(service), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reasoner", default="echo", help="echo (scripted), default, or any frs reasoner spec")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=50, help="requests per client")
    parser.add_argument("--queries", type=int, default=5, help="queries per request")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="stop sending after this long")
    parser.add_argument("--timeout", type=float, default=120.0, help="the server's per-request timeout (s), "
                        "queue wait included")
    parser.add_argument("--json", help="also write the report to this file")
    from fastreasonseg.reasoning.backends.gguf_merge import DEFAULT_LORA_MODE, LORA_MODES

    parser.add_argument("--lora-mode", choices=LORA_MODES, default=DEFAULT_LORA_MODE,
                        help="llama.cpp: the adapter merged into the model (default) or applied per token")
    parser.add_argument("--serve-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_only:
        serve_only(args.reasoner, args.port, args.timeout, args.lora_mode)
        return 0
    if not (1 <= args.clients <= 16 and 1 <= args.requests <= 1000 and 1 <= args.queries <= 8):
        parser.error("keep it bounded: 1-16 clients, 1-1000 requests each, 1-8 queries per request")

    import psutil

    from fastreasonseg.api.demos import demo_scene
    from fastreasonseg.client import FrsClient
    from fastreasonseg.serve.testing import free_port

    port = free_port()
    child = subprocess.Popen([sys.executable, __file__, "--serve-only", "--reasoner", args.reasoner,
                              "--port", str(port), "--timeout", str(args.timeout), "--lora-mode", args.lora_mode])
    base = f"http://127.0.0.1:{port}"
    server = psutil.Process(child.pid)
    peak_rss = 0
    sampling = threading.Event()

    def sample() -> None:
        nonlocal peak_rss
        while not sampling.is_set():
            try:
                peak_rss = max(peak_rss, server.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.05)

    try:
        started = time.monotonic()
        while True:  # model loading can take a while
            try:
                with FrsClient(base, timeout=2, retries=0) as probe:
                    probe.health()
                break
            except Exception:
                if child.poll() is not None or time.monotonic() - started > 180:
                    print("server did not start", file=sys.stderr)
                    return 1
                time.sleep(0.2)
        load_s = time.monotonic() - started
        threading.Thread(target=sample, daemon=True).start()
        queries = ["the object on the far left", "the nearest object", "the largest object", "something to sit on",
                   "the two objects closest to each other", "the highest object", "the smallest object",
                   "the object in the middle"][:args.queries]
        with FrsClient(base, timeout=300) as client:
            scene_id = client.segment(demo_scene("kitchen").twin.to_dict(), queries[:1])["scene"]["scene_id"]
        latencies: list[float] = []
        errors: list[str] = []
        rss_marks: list[tuple[int, int]] = []
        lock = threading.Lock()
        deadline = time.monotonic() + args.max_seconds
        total = args.clients * args.requests
        warm = max(1, total // 10)

        def worker() -> None:
            with FrsClient(base, timeout=300, retries=5) as client:
                for _ in range(args.requests):
                    if time.monotonic() > deadline:
                        return
                    t0 = time.perf_counter()
                    try:
                        reply = client.segment(scene=scene_id, queries=queries)
                        if len(reply["results"]) != len(queries):
                            raise RuntimeError(f"{len(reply['results'])} results for {len(queries)} queries")
                    except Exception as exc:
                        with lock:
                            errors.append(f"{type(exc).__name__}: {exc}")
                        continue
                    with lock:
                        latencies.append(time.perf_counter() - t0)
                        if len(latencies) in (warm, total) or len(latencies) % 50 == 0:
                            rss_marks.append((len(latencies), server.memory_info().rss))

        t_start = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - t_start
        sampling.set()
        end_rss = server.memory_info().rss
        warm_rss = next((rss for n, rss in rss_marks if n >= warm), end_rss)
        done = len(latencies)
        report = {
            "reasoner": args.reasoner, "clients": args.clients, "server_timeout_s": args.timeout, "requests_sent": total, "requests_ok": done,
            "queries_per_request": args.queries, "errors": len(errors), "first_errors": errors[:3],
            "wall_s": round(wall, 2), "requests_per_s": round(done / wall, 2), "queries_per_s": round(done * args.queries / wall, 2),
            "latency_p50_s": round(percentile(latencies, 0.5), 3) if latencies else None,
            "latency_p99_s": round(percentile(latencies, 0.99), 3) if latencies else None,
            "latency_mean_s": round(statistics.fmean(latencies), 3) if latencies else None,
            "server_peak_rss_mb": round(peak_rss / 2**20, 1), "server_rss_after_warmup_mb": round(warm_rss / 2**20, 1),
            "server_rss_end_mb": round(end_rss / 2**20, 1), "rss_growth_after_warmup_mb": round((end_rss - warm_rss) / 2**20, 1),
            "rss_marks_mb": [(n, round(rss / 2**20, 1)) for n, rss in rss_marks],
            "server_start_s": round(load_s, 1), "stopped_by_time_limit": time.monotonic() > deadline,
        }
        print(json.dumps(report, indent=2))
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(report, handle, indent=2)
        return 0 if not errors and done == total else 1
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()


if __name__ == "__main__":
    raise SystemExit(main())
