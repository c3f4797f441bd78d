"""The load generator of bench.run, in a process of its own so its CPU is not the server's and
is reported beside the figures (a client at 100 % of a core would be the bottleneck).

A raw HTTP/1.1 client on uvloop: keep-alive connections, Content-Length bodies, nothing parsed
beyond what is needed. One job per run, given as JSON on the command line; results as one JSON
line on stdout.

- throughput: `concurrency` connections send `path` back to back for `seconds`;
- streams: open one stream per header set in `headers_file`, as fast as possible, until each
  has sent its first body byte; hold them until stdin closes or says anything, then leave;
- rate: `method path` at a fixed `rate` per second for `seconds`, latency per request.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from typing import Any

import uvloop

CONNECT_AT_ONCE = 256  # connects in flight: more only overflows the listen backlog


START_CPU = 0.0  # the interpreter's start-up is not the job's


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime - START_CPU


def request_bytes(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if method != "GET":
        lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """One request and its whole response on a kept-alive connection; returns the status."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def throughput(port: int, path: str, headers: dict[str, str], concurrency: int, seconds: float) -> dict[str, Any]:
    request = request_bytes("GET", path, headers)
    counts = {"ok": 0, "errors": 0}
    deadline = 0.0

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.monotonic() < deadline:
            status = await exchange(reader, writer, request)
            counts["ok" if status == 200 else "errors"] += 1
        writer.close()

    deadline = time.monotonic() + seconds
    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {**counts, "elapsed": time.monotonic() - started}


async def open_stream(
    port: int, path: str, headers: dict[str, str], failed: dict[str, int]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A stream's connection once its response head says 200; a refusal is counted in `failed`
    by status line (e.g. 503 when the database pool is exhausted) and gives None."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_bytes("GET", path, headers))
    head = await reader.readuntil(b"\r\n\r\n")
    if int(head[9:12]) == 200:
        return reader, writer
    status = head.split(b"\r\n", 1)[0].decode()
    failed[status] = failed.get(status, 0) + 1
    writer.close()
    return None


async def streams(port: int, path: str, header_sets: list[dict[str, str]]) -> dict[str, Any]:
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    writers: list[asyncio.StreamWriter] = []
    failed: dict[str, int] = {}  # refusals by status line (open_stream)

    async def open_one(headers: dict[str, str]) -> None:
        async with gate:
            opened = await open_stream(port, path, headers, failed)
            if opened is None:
                return
            reader, writer = opened
            await reader.read(1)  # the first event or heartbeat byte: the stream is live
            writers.append(writer)
            # The rest is left unread: an idle client's socket buffer holds the heartbeats.

    started = time.monotonic()
    await asyncio.gather(*(open_one(h) for h in header_sets))
    elapsed = time.monotonic() - started
    print(json.dumps({"opened": len(writers), "failed": failed, "elapsed": elapsed, "cpu": cpu_seconds()}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for writer in writers:
        writer.close()
    return {"closed": len(writers)}


async def reconnects(
    ports: list[int], path: str, header_sets: list[dict[str, str]], expect: list[int]
) -> dict[str, Any]:
    """Every stream reconnects with its Last-Event-ID at once (CONNECT_AT_ONCE in flight) and reads
    until the count that ends its replay: how long until the last one is live, and whether each
    replayed exactly the seqs `expect` (nothing lost, nothing twice). With several `ports` (web
    processes), the streams are spread over them in turn, as a load balancer would."""
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    writers: list[asyncio.StreamWriter] = []
    failed: dict[str, int] = {}
    lost = twice = 0
    live_after: list[float] = []
    started = time.monotonic()

    async def reconnect(port: int, headers: dict[str, str]) -> None:
        nonlocal lost, twice
        async with gate:
            opened = await open_stream(port, path, headers, failed)
            if opened is None:
                return
            reader, writer = opened
            replayed: list[int] = []
            event, seq = "", None
            while True:  # the body is chunked: event lines are read as they come
                line = (await reader.readline()).strip()
                if line.startswith(b"event: "):
                    event = line[7:].decode()
                elif line.startswith(b"id: "):
                    seq = int(line[4:])
                elif event == "notification_count":
                    break
                elif line == b"" and event == "new_notification":
                    replayed.append(int(seq or 0))
                    event, seq = "", None
            live_after.append(time.monotonic() - started)
            lost += len(set(expect) - set(replayed))
            twice += len(replayed) - len(set(replayed))
            writers.append(writer)

    await asyncio.gather(*(reconnect(ports[i % len(ports)], h) for i, h in enumerate(header_sets)))
    result = {
        "opened": len(writers),
        "failed": failed,
        "all_live_s": max(live_after, default=0.0),
        "lost": lost,
        "twice": twice,
    }
    for writer in writers:
        writer.close()
    return result


async def broadcast(port: int, path: str, header_sets: list[dict[str, str]], within: float) -> dict[str, Any]:
    """Opens every stream and reads it until it is live, says so (a line on stdout), then waits
    for the time the announcement was sent (a line on stdin) and reports when each stream got the
    first new notification after it, in seconds from that time."""
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    arrived: list[float] = []
    failed: dict[str, int] = {}
    live: list[asyncio.StreamReader] = []
    writers: list[asyncio.StreamWriter] = []

    async def read_until(reader: asyncio.StreamReader, wanted: bytes) -> None:
        while not (await reader.readline()).startswith(wanted):
            pass

    async def open_one(headers: dict[str, str]) -> None:
        async with gate:
            opened = await open_stream(port, path, headers, failed)
            if opened is None:
                return
            reader, writer = opened
            await read_until(reader, b"event: notification_count")
            live.append(reader)
            writers.append(writer)

    async def wait_for_news(reader: asyncio.StreamReader) -> None:
        await read_until(reader, b"event: new_notification")
        arrived.append(time.time())

    await asyncio.gather(*(open_one(h) for h in header_sets))
    waiting = [asyncio.create_task(wait_for_news(reader)) for reader in live]
    print(json.dumps({"live": len(live), "failed": failed}), flush=True)
    sent_at = float(await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
    cpu_before_news = cpu_seconds()
    await asyncio.wait(waiting, timeout=within)
    news_cpu = cpu_seconds() - cpu_before_news  # the readings, not the openings before them
    for task in waiting:
        task.cancel()
    for writer in writers:
        writer.close()
    latencies = sorted(t - sent_at for t in arrived)
    return {
        "live": len(live),
        "received": len(latencies),
        "p50": latencies[len(latencies) // 2] if latencies else float("inf"),
        "p95": latencies[int(len(latencies) * 0.95)] if latencies else float("inf"),
        "max": latencies[-1] if latencies else float("inf"),
        "news_cpu": news_cpu,
    }


async def rate(
    port: int, method: str, paths: list[str], headers: dict[str, str], per_second: float, seconds: float
) -> dict[str, Any]:
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(8):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    errors = 0

    async def one(path: str) -> None:
        nonlocal errors
        reader, writer = await pool.get()
        started = time.perf_counter()
        status = await exchange(reader, writer, request_bytes(method, path, headers))
        latencies.append((time.perf_counter() - started) * 1000)
        errors += status != 200
        pool.put_nowait((reader, writer))

    tasks = []
    start = time.monotonic()
    for i in range(int(per_second * seconds)):
        await asyncio.sleep(max(0.0, start + i / per_second - time.monotonic()))
        tasks.append(asyncio.create_task(one(paths[i % len(paths)])))
    await asyncio.gather(*tasks)
    latencies.sort()
    return {"p50": latencies[len(latencies) // 2], "p99": latencies[int(len(latencies) * 0.99)], "errors": errors}


async def run(job: dict[str, Any]) -> dict[str, Any]:
    kind = job.pop("kind")
    if kind == "throughput":
        return await throughput(**job)
    if kind == "streams":
        return await streams(**job)
    if kind == "reconnects":
        return await reconnects(**job)
    if kind == "broadcast":
        return await broadcast(**job)
    return await rate(**job)


def main() -> None:
    global START_CPU
    START_CPU = cpu_seconds()
    job = json.loads(sys.argv[1])
    if "headers_file" in job:  # thousands of tokens: too long for a command line
        with open(job.pop("headers_file")) as file:
            job["header_sets"] = json.load(file)
    result = uvloop.run(run(job))
    print(json.dumps({**result, "cpu": cpu_seconds()}), flush=True)


if __name__ == "__main__":
    main()
