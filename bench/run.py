"""The performance suite (issue 12): Tidings beside a bare floor, in the same run, with the same client.

    .venv/bin/python -m bench.run                          # SQLite, small size
    .venv/bin/python -m bench.run --size full              # each figure at two sizes, with growth
    .venv/bin/python -m bench.run --postgres postgresql+asyncpg://postgres@127.0.0.1/test

Tidings is `tidings serve` (embedded mode) on a seeded database; the floor is bench/floor.py on
the same uvicorn. Every figure is a ratio to the floor's, because the machine is shared and
absolute numbers move with its load (printed before and after); the client's CPU is printed so
a client bottleneck is visible. Server CPU is read from /proc for the server's own process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, select

from tests.crowd import seed_crowd
from tests.services import LiveServer, free_port, scaled_env, throwaway_postgres_database
from tidings.cli import upgrade_database
from webapp.auth.models import User
from webapp.auth.tokens import issue_access_token
from webapp.db import create_engine, create_sessionmaker, utcnow
from webapp.notifications.models import Notification, NotificationCounter

SECRET = "bench-" + "s3cr3t-K3y-" * 5
CROWD_INBOX = 3  # notifications each stream's user has; a reconnect from seq 1 replays 2 and 3
ROOT = Path(__file__).resolve().parent.parent
WEB_PROCESSES = os.cpu_count() or 1  # the scaled-out figures: one web process per core


@dataclass(frozen=True)
class Size:
    concurrency: int  # connections of the throughput figures
    seconds: float  # each throughput figure runs this long
    streams: tuple[int, ...]  # K, at one or two sizes
    notifications: tuple[int, ...]  # the reader's inbox, at one or two sizes
    rate: float  # mark-as-read requests per second
    rate_seconds: float


SIZES = {
    "smoke": Size(8, 1.0, (200,), (1000,), 20, 2),
    "small": Size(32, 5.0, (1000,), (1000,), 50, 5),
    "full": Size(32, 10.0, (1000, 10_000), (1000, 10_000), 50, 10),
}


# --- the server's process, read from /proc ------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def raise_open_files_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the servers and client inherit it
    return hard


# --- seeding ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    readers: list[int]  # the reader of each inbox size
    crowd: list[int]  # `streams` users, each with CROWD_INBOX notifications and a seat at the event
    organizer: int  # the event's organizer, who announces to the crowd
    event: int


async def seed(url: str, streams: int, inboxes: tuple[int, ...]) -> Seeded:
    engine = create_engine(url)
    async with create_sessionmaker(engine)() as session:
        organizer, event = await seed_crowd(session, streams, "bench")
        crowd = list(await session.scalars(select(User.id).where(User.email.like("bench-fan%")).order_by(User.id)))
        readers = []
        for size in inboxes:
            reader = User(email=f"reader-{size}@example.com", name="Reader", password_hash="!", timezone="UTC")
            session.add(reader)
            await session.flush()
            now = utcnow()
            rows = [
                {
                    "user_id": reader.id,
                    "seq": seq,
                    "type": "announcement",
                    "title": f"News {seq}",
                    "body": "Something happened.",
                    "dedupe_key": f"bench:{seq}",
                    "created_at": now,
                }
                for seq in range(1, size + 1)
            ]
            for start in range(0, len(rows), 1000):
                await session.execute(insert(Notification), rows[start : start + 1000])
            session.add(NotificationCounter(user_id=reader.id, last_seq=size, version=size))
            readers.append(reader.id)
        # Each of the crowd has CROWD_INBOX notifications, for the reconnect figure's replay (after
        # the readers', whose ids mark-as-read counts on).
        now = utcnow()
        for start in range(0, len(crowd), 1000):
            chunk = crowd[start : start + 1000]
            await session.execute(
                insert(Notification),
                [
                    {
                        "user_id": uid,
                        "seq": seq,
                        "type": "announcement",
                        "title": f"Crowd news {seq}",
                        "body": "",
                        "dedupe_key": f"crowd:{seq}",
                        "created_at": now,
                        "actor_id": organizer,  # announcements name who sent them
                    }
                    for uid in chunk
                    for seq in range(1, CROWD_INBOX + 1)
                ],
            )
            await session.execute(
                insert(NotificationCounter),
                [{"user_id": uid, "last_seq": CROWD_INBOX, "version": CROWD_INBOX} for uid in chunk],
            )
        await session.commit()
    await engine.dispose()
    return Seeded(readers, crowd, organizer, event)


def bearer(user_id: int) -> dict[str, str]:
    token = issue_access_token(user_id, SECRET, timedelta(hours=4), uuid.uuid4().hex)
    return {"Authorization": f"Bearer {token}"}


# --- the servers and the client -----------------------------------------------------------------


class Floor:
    def __init__(self, log: Path, *, litestar: bool = False) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "bench.floor", "--port", str(self.port), *(["--litestar"] if litestar else [])]
        with log.open("ab") as out:
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=out)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/hello", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the floor did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@contextmanager
def servers(url: str, folder: Path) -> Iterator[tuple[LiveServer, Floor]]:
    env = {"DATABASE_URL": url, "SECRET_KEY": SECRET, "LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
    tidings = LiveServer(env, folder / "tidings.log")
    tidings.env.pop("REDIS_URL", None)  # embedded mode: jobs and the doorbell in the web process
    tidings.start()
    floor = Floor(folder / "floor.log")
    try:
        yield tidings, floor
    except Exception:
        for log in ("tidings.log", "floor.log"):  # what the servers said, before the folder goes
            sys.stderr.write(f"--- the end of {log}:\n{(folder / log).read_text(errors='replace')[-3000:]}\n")
        raise
    finally:
        floor.stop()
        tidings.stop()


@contextmanager
def scaled_servers(url: str, folder: Path, processes: int) -> Iterator[list[LiveServer]]:
    """`processes` web processes of one scaled deployment (README, "Scaling out"): the same
    PostgreSQL, the Redis doorbell, each on its own port (the client spreads its streams over
    them as a load balancer would). Jobs are not needed by the figures they serve."""
    env = {**scaled_env(url, SECRET), "LOG_LEVEL": "WARNING"}
    started: list[LiveServer] = []
    try:
        for n in range(processes):
            server = LiveServer(env, folder / f"tidings-{n}.log")
            server.start()
            started.append(server)
        yield started
    finally:
        for server in started:
            server.stop()


CLIENT_CPU: list[tuple[str, float, float]] = []  # (what, client CPU s, wall s)


def client(what: str, job: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bench.client", json.dumps(job)], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    if done.returncode:
        raise RuntimeError(f"client failed on {what}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    CLIENT_CPU.append((what, result["cpu"], time.monotonic() - started))
    return result


def throughput(what: str, pid: int, port: int, path: str, headers: dict[str, str], size: Size) -> tuple[float, float]:
    """(requests per second, server CPU ms per request)."""
    job = {"kind": "throughput", "port": port, "path": path, "headers": headers}
    client(f"{what} warm-up", {**job, "concurrency": 4, "seconds": 0.3})
    cpu = cpu_seconds(pid)
    result = client(what, {**job, "concurrency": size.concurrency, "seconds": size.seconds})
    used = cpu_seconds(pid) - cpu
    if result["errors"]:
        raise RuntimeError(f"{what}: {result['errors']} responses were not 200")
    return result["ok"] / result["elapsed"], used * 1000 / max(1, result["ok"])


def streams(
    what: str, pid: int, port: int, path: str, header_sets: list[dict[str, str]], folder: Path
) -> dict[str, float]:
    """Opens one stream per header set: opens/s, opens per server CPU-second, KB per idle stream, refusals."""
    headers_file = folder / f"{what}.json"
    headers_file.write_text(json.dumps(header_sets))
    job = {"kind": "streams", "port": port, "path": path, "headers_file": str(headers_file)}
    time.sleep(1.0)  # the previous figure's connections are gone
    rss, cpu, fds = rss_kb(pid), cpu_seconds(pid), len(os.listdir(f"/proc/{pid}/fd"))
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.client", json.dumps(job)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin and process.stdout
    opened = json.loads(process.stdout.readline())
    used = cpu_seconds(pid) - cpu
    refused = sum(opened["failed"].values())  # by status line, e.g. 503 when the database pool is exhausted
    if refused:
        sys.stderr.write(f"{what}: refused {opened['failed']}\n")
    time.sleep(2.0)  # settle: every stream has sent its first events and sits idle
    grown = rss_kb(pid) - rss
    # A stream that ended after its first byte (on PostgreSQL: its opening read timed out waiting
    # for a pooled connection) is no idle stream: the server's sockets say how many are held.
    held = min(opened["opened"], len(os.listdir(f"/proc/{pid}/fd")) - fds)
    if held < opened["opened"]:
        sys.stderr.write(f"{what}: {opened['opened'] - held} streams ended after their first byte\n")
    process.stdin.write("close\n")
    process.stdin.flush()
    process.wait(timeout=60)
    CLIENT_CPU.append((what, opened["cpu"], opened["elapsed"]))
    return {
        "opens_per_s": opened["opened"] / opened["elapsed"],
        "opens_per_cpu_s": opened["opened"] / max(used, 1e-3),
        "kb_per_stream": grown / max(1, held),
        "refused": refused + opened["opened"] - held,
    }


def reconnect_storm(ports: list[int], users: list[int], folder: Path) -> dict[str, Any]:
    """Every user's stream reconnects at once from seq 1 (as after a deploy): each must replay
    seqs 2 and 3, exactly once, before its count. Several ports: the streams are spread over
    those web processes."""
    headers_file = folder / "reconnects.json"
    headers_file.write_text(json.dumps([{**bearer(uid), "Last-Event-ID": "1"} for uid in users]))
    time.sleep(1.0)
    job = {
        "kind": "reconnects",
        "ports": ports,
        "path": "/api/v1/notifications/stream",
        "headers_file": str(headers_file),
        "expect": list(range(2, CROWD_INBOX + 1)),
    }
    result = client(f"Tidings reconnects ({len(users):,}, {len(ports)} web process(es))", job)
    if result["failed"]:
        sys.stderr.write(f"reconnects: refused {result['failed']}\n")
    return result


def wrongly_replayed(storm: dict[str, Any], streams: int) -> int:
    """Seqs a storm's streams lost or got twice, and streams that did not open."""
    return int(storm["lost"] + storm["twice"] + (streams - storm["opened"]))


def broadcast(port: int, seeded: Seeded, users: list[int], folder: Path) -> dict[str, Any]:
    """The organizer announces to the event while each of `users` has its stream open: seconds
    from the request to each stream's new notification (rows written by the fan-out job
    included). Only the first `users` of the crowd listen; the announcement goes to the whole
    crowd, so at the smaller size it writes more rows than it has listeners."""
    headers_file = folder / "broadcast.json"
    headers_file.write_text(json.dumps([bearer(uid) for uid in users]))
    job = {
        "kind": "broadcast",
        "port": port,
        "path": "/api/v1/notifications/stream",
        "headers_file": str(headers_file),
        "within": 30.0,
    }
    listening = subprocess.Popen(
        [sys.executable, "-m", "bench.client", json.dumps(job)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert listening.stdin and listening.stdout
    ready = json.loads(listening.stdout.readline())
    if ready["failed"]:
        sys.stderr.write(f"broadcast: refused {ready['failed']}\n")
    sent_at = time.time()
    answer = httpx.post(
        f"http://127.0.0.1:{port}/api/v1/announcements",
        json={"title": "Doors open", "body": "Come in.", "event_id": seeded.event},
        headers=bearer(seeded.organizer),
        timeout=30,
    )
    answer.raise_for_status()
    listening.stdin.write(f"{sent_at}\n")
    listening.stdin.flush()
    result: dict[str, Any] = json.loads(listening.stdout.readlines()[-1])
    listening.wait(timeout=60)
    # While the news arrives only: the CPU of opening the streams is not spent in that time.
    CLIENT_CPU.append((f"Tidings broadcast ({len(users):,})", result["news_cpu"], result["max"] or 0.0))
    if result["received"] < len(users):
        sys.stderr.write(f"broadcast: {len(users) - result['received']} streams got nothing within 30 s\n")
    return result


# --- the table ----------------------------------------------------------------------------------

Row = tuple[str, float, float | None, str, bool | None]  # figure, Tidings, floor, goal, met
ROWS: list[Row] = []


def row(figure: str, tidings: float, floor: float | None, goal: str, met: bool | None) -> None:
    ROWS.append((figure, tidings, floor, goal, met))


def print_table(title: str, load: tuple[tuple[float, ...], tuple[float, ...]]) -> None:
    print(f"\n{title}")
    print(f"{'figure':<44} {'Tidings':>10} {'floor':>10} {'ratio':>8}  {'goal':<24} verdict")
    for figure, tidings, floor, goal, met in ROWS:
        ratio = f"{tidings / floor:7.3f}x" if floor else f"{'-':>8}"
        floor_text = f"{floor:10.2f}" if floor is not None else f"{'-':>10}"
        verdict = "-" if met is None else ("met" if met else "MISSED")
        print(f"{figure:<44} {tidings:10.2f} {floor_text} {ratio}  {goal:<24} {verdict}")
    before, after = load
    averages = [" ".join(f"{x:.2f}" for x in load) for load in (before, after)]
    print(f"\nload average before: {averages[0]}; after: {averages[1]}")
    print(f"cores: {os.cpu_count()}")
    print("client CPU (its own process; near 100 % of its wall time would make it the bottleneck):")
    for what, cpu, wall in CLIENT_CPU:
        if "warm-up" not in what:
            print(f"  {what:<42} {cpu:6.2f} s CPU in {wall:6.2f} s ({100 * cpu / max(wall, 1e-3):3.0f} %)")


def measure(url: str, size: Size, folder: Path) -> None:
    seeded = asyncio.run(seed(url, max(size.streams), size.notifications))
    readers, crowd = seeded.readers, seeded.crowd
    with servers(url, folder) as (tidings, floor):
        app_pid, floor_pid = tidings.process.pid, floor.process.pid  # type: ignore[union-attr]
        hello = throughput("floor /hello", floor_pid, floor.port, "/hello", {}, size)
        reads: list[float] = []
        for inbox, reader in zip(size.notifications, readers, strict=True):
            rps, cpu = throughput(
                f"Tidings unread_count ({inbox:,})",
                app_pid,
                tidings.port,
                "/api/v1/notifications/unread_count",
                bearer(reader),
                size,
            )
            row(
                f"API read req/s ({inbox:,} notifications)",
                rps,
                hello[0],
                ">= 0.05x floor hello",
                rps >= 0.05 * hello[0],
            )
            row(f"API read server CPU ms/req ({inbox:,})", cpu, hello[1], "<= 0.5 ms", cpu <= 0.5)
            reads.append(cpu)
        health = throughput("Tidings /healthz", app_pid, tidings.port, "/healthz", {}, size)
        row("healthz req/s", health[0], hello[0], ">= 0.3x floor hello", health[0] >= 0.3 * hello[0])
        # What the framework alone costs, in the same run: the part of every figure no change to
        # Tidings' own code can remove.
        litestar = Floor(folder / "litestar.log", litestar=True)
        try:
            framework = throughput("Litestar's own /hello", litestar.process.pid, litestar.port, "/hello", {}, size)
        finally:
            litestar.stop()
        row("Litestar's own hello req/s (reference)", framework[0], hello[0], "-", None)
        row("healthz req/s against Litestar's own hello", health[0], framework[0], "-", None)

        marks = client(
            "Tidings mark-as-read",
            {
                "kind": "rate",
                "port": tidings.port,
                "method": "POST",
                "paths": [f"/api/v1/notifications/{n}/read" for n in range(1, size.notifications[0] + 1)],
                "headers": bearer(readers[0]),
                "per_second": size.rate,
                "seconds": size.rate_seconds,
            },
        )
        if marks["errors"]:
            raise RuntimeError(f"mark-as-read: {marks['errors']} responses were not 200")
        row(f"mark-as-read p50 ms (at {size.rate:g}/s)", marks["p50"], None, "-", None)
        row(f"mark-as-read p99 ms (at {size.rate:g}/s)", marks["p99"], None, "<= 25 ms", marks["p99"] <= 25)

    # Each stream size on fresh servers: memory freed by an earlier figure stays in a process's
    # RSS and would be reused unseen.
    opened: list[tuple[dict[str, float], dict[str, float]]] = []
    for k in size.streams:
        with servers(url, folder) as (tidings, floor):
            app_pid, floor_pid = tidings.process.pid, floor.process.pid  # type: ignore[union-attr]
            app = streams(
                f"Tidings streams ({k:,})",
                app_pid,
                tidings.port,
                "/api/v1/notifications/stream",
                [bearer(uid) for uid in crowd[:k]],
                folder,
            )
            bare = streams(f"floor streams ({k:,})", floor_pid, floor.port, "/stream", [{}] * k, folder)
            ratio = app["opens_per_s"] / bare["opens_per_s"]
            row(f"stream opens/s ({k:,})", app["opens_per_s"], bare["opens_per_s"], ">= 0.15x floor", ratio >= 0.15)
            row(
                f"stream opens per server CPU-s ({k:,})",
                app["opens_per_cpu_s"],
                bare["opens_per_cpu_s"],
                ">= 1,000 per core",
                app["opens_per_cpu_s"] >= 1000,
            )
            row(f"streams refused or dropped ({k:,})", app["refused"], bare["refused"], "0", app["refused"] == 0)
            kb = app["kb_per_stream"]
            row(
                f"idle KB per stream ({k:,})",
                kb,
                bare["kb_per_stream"],
                "<= 1.5x floor",
                kb <= 1.5 * bare["kb_per_stream"],
            )
            opened.append((app, bare))
        with servers(url, folder) as (tidings, _floor):
            storm = reconnect_storm([tidings.port], crowd[:k], folder)
            budget = 15.0 * k / 10_000  # the goal: 10,000 within 15 s, so 1,000 within 1.5 s
            row(
                f"reconnects with Last-Event-ID, all live s ({k:,})",
                storm["all_live_s"],
                None,
                f"<= {budget:g} s",
                storm["all_live_s"] <= budget and storm["opened"] == k,
            )
            wrong = wrongly_replayed(storm, k)
            row(f"replay lost, twice or refused ({k:,})", wrong, None, "0", wrong == 0)
        if url.startswith("postgresql"):  # scaled out: the storm spread over one web process per core
            with scaled_servers(url, folder, WEB_PROCESSES) as web:
                storm = reconnect_storm([server.port for server in web], crowd[:k], folder)
            wrong = wrongly_replayed(storm, k)
            row(
                f"reconnects, {WEB_PROCESSES} web processes, all live s ({k:,})",
                storm["all_live_s"],
                None,
                f"<= {budget:g} s",
                storm["all_live_s"] <= budget and wrong == 0,
            )
            row(f"replay lost, twice or refused, {WEB_PROCESSES} processes ({k:,})", wrong, None, "0", wrong == 0)
        with servers(url, folder) as (tidings, _floor):
            news = broadcast(tidings.port, seeded, crowd[:k], folder)
            row(f"broadcast to {k:,} live: p95 s", news["p95"], None, "<= 1 s", news["p95"] <= 1.0)
            row(
                f"broadcast to {k:,} live: last s",
                news["max"],
                None,
                "<= 2 s, all",
                news["max"] <= 2.0 and news["received"] == k,
            )

    if len(reads) == 2:  # growth: cost per unit at the larger size over the smaller
        factor = size.notifications[1] / size.notifications[0]
        growth = reads[1] / reads[0]
        row(
            f"growth: API read CPU, {factor:g}x notifications",
            growth,
            None,
            f"<= {factor:g} (linear)",
            growth <= factor,
        )
        (small_app, small_bare), (big_app, big_bare) = opened
        for key, label in (("opens_per_cpu_s", "CPU per open"), ("kb_per_stream", "KB per stream")):
            inverse = key == "opens_per_cpu_s"  # a rate: cost per open is its inverse
            app_growth = (small_app[key] / big_app[key]) if inverse else big_app[key] / small_app[key]
            bare_growth = (small_bare[key] / big_bare[key]) if inverse else big_bare[key] / small_bare[key]
            row(f"growth: {label}, 10x streams", app_growth, bare_growth, "<= 1.5 (linear)", app_growth <= 1.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", help="a PostgreSQL URL; a throwaway database is made on its server")
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    args = parser.parse_args()
    size = SIZES[args.size]
    limit = raise_open_files_limit()
    if limit < max(size.streams) + 1000:  # per process: the server holds K sockets, the client K
        sys.exit(f"the open files limit ({limit}) is too low for {max(size.streams):,} streams")
    load_before = os.getloadavg()
    with throwaway_postgres_database(args.postgres) if args.postgres else nullcontext(None) as pg_url:
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            url = pg_url or f"sqlite+aiosqlite:///{folder / 'bench.db'}"
            upgrade_database(url)
            measure(url, size, folder)
    database = "PostgreSQL" if args.postgres else "SQLite"
    print_table(f"Tidings vs the floor, {database}, size {args.size}", (load_before, os.getloadavg()))


if __name__ == "__main__":
    main()
