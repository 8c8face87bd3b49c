"""A small HTTP/1.1 load generator for api_bench.py, run in its own process.

    python benchmarks/_loadgen.py SPEC.json  ->  one JSON line of results on standard output

SPEC: ``{"host", "port", "clients", "requests", "paths": [...], "rate", "sse": {"paths": [...],
"seconds"}}``. ``clients`` keep-alive connections each send the next of ``requests`` GETs
(``paths`` taken in turn) and wait for the whole answer, so at most ``clients`` requests are in
flight. Without ``rate`` (closed loop) a client sends its next request as soon as the last is
answered: the most the server can do. With ``rate`` (open loop) request *i* is due at
``i / rate`` seconds and its latency counts from then, so time spent waiting for a free
connection counts too. Connection errors (refused, reset, closed early) are counted, never
retried.

Written on asyncio streams rather than an HTTP client library: on a 2-core machine the load
generator shares the CPU with the server, and a library client (httpx) spends ~10x the CPU per
request of these few lines, which would lower the server's figures.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, int]:
    """(status, body bytes) of one response: Content-Length or chunked."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    if "content-length" in headers:
        n = int(headers["content-length"])
        await reader.readexactly(n)
        return status, n
    if headers.get("transfer-encoding") == "chunked":
        total = 0
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            total += size
            if size == 0:
                return status, total
    raise ConnectionError("a response without a length")


async def client(spec: dict, queue: list, out: dict, t0: float) -> None:
    host, port = spec["host"], spec["port"]
    host_header = spec.get("host_header") or f"{host}:{port}"
    rate = spec.get("rate")
    reader = writer = None
    while queue:
        i, path = queue.pop()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            started = time.perf_counter()
            if rate:
                due = t0 + i / rate
                if due > started:
                    await asyncio.sleep(due - started)
                started = due
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nAccept: application/json\r\n\r\n".encode())
            status, _ = await _read_response(reader)
            out["latencies"].append(time.perf_counter() - started)
            out["status"][str(status)] = out["status"].get(str(status), 0) + 1
        except (OSError, asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            out["errors"].append(f"{type(exc).__name__}: {exc}"[:200])
            if writer is not None:
                writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def subscriber(spec: dict, path: str, seconds: float, out: dict) -> None:
    """Hold a server-sent-event stream open for ``seconds``; count its events and comments."""
    host, port = spec["host"], spec["port"]
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        status = int(head.split()[1])
        out["sse_status"][str(status)] = out["sse_status"].get(str(status), 0) + 1
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                line = await asyncio.wait_for(reader.readline(), max(deadline - time.monotonic(), 0.01))
            except asyncio.TimeoutError:
                break
            if not line:
                out["errors"].append("an event stream ended early")
                break
            if line.startswith(b"event: dataset"):
                out["sse_events"] += 1
            elif line.startswith(b": "):
                out["sse_keepalives"] += 1
        writer.close()
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
        out["errors"].append(f"event stream: {type(exc).__name__}: {exc}"[:200])


async def main(spec: dict) -> dict:
    paths = spec["paths"]
    queue = [(i, paths[i % len(paths)]) for i in range(spec["requests"])][::-1]
    out = {"latencies": [], "status": {}, "errors": [], "sse_status": {}, "sse_events": 0, "sse_keepalives": 0}
    sse = spec.get("sse") or {}
    subs = [asyncio.create_task(subscriber(spec, p, sse["seconds"], out)) for p in sse.get("paths", [])]
    started = time.perf_counter()
    await asyncio.gather(*(client(spec, queue, out, started) for _ in range(spec["clients"])))
    out["seconds"] = time.perf_counter() - started
    await asyncio.gather(*subs)
    return out


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        result = asyncio.run(main(json.load(f)))
    print(json.dumps(result))
