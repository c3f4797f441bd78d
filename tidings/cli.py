"""The `tidings` command: serve, db upgrade, seed-demo, create-user."""

from __future__ import annotations

import argparse
import asyncio
import errno
import getpass
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from webapp.settings import PROJECT_ROOT, Settings, SettingsError, get_settings


def upgrade_database(database_url: str | None = None) -> list[str]:
    """Applies the migrations the database lacks; returns their revisions, oldest first."""
    from alembic.config import Config

    from alembic import command

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url or get_settings().database_url
    config.attributes["configure_logger"] = False
    if config.attributes["database_url"].startswith("sqlite"):
        Path(PROJECT_ROOT / "var").mkdir(exist_ok=True)
    applied: list[str] = []
    config.attributes["on_migration"] = applied.append  # alembic/env.py reports each step
    command.upgrade(config, "head")
    return applied


def db_upgrade(_: argparse.Namespace) -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(Config(str(PROJECT_ROOT / "alembic.ini"))).get_current_head()
    applied = upgrade_database()
    if not applied:
        print(f"Database already at {head}; nothing to do.")
        return
    start = "an empty database" if applied[0] == _first_revision() else "the previous schema"
    print(f"Upgraded from {start} to {head}: applied {len(applied)} migration(s): {', '.join(applied)}.")


def _first_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(Config(str(PROJECT_ROOT / "alembic.ini")))
    return next(rev.revision for rev in script.walk_revisions() if rev.down_revision is None)


def serve_settings(host: str | None, port: int | None) -> Settings:
    """The settings of a server started with --host/--port: as if HOST and PORT said so, so the
    default ALLOWED_ORIGINS name the port actually bound, and every later get_settings() agrees."""
    if host:
        os.environ["HOST"] = host
    if port:
        os.environ["PORT"] = str(port)
    get_settings.cache_clear()
    return get_settings()


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from tidings.app import create_app
    from webapp.collector import collect_less_often
    from webapp.logs import uvicorn_log_config
    from webapp.realtime.shutdown import StreamClosingServer

    settings = serve_settings(args.host, args.port)
    listener = _listen(settings.host, settings.port)  # before anything starts: a taken port is one line
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=uvicorn_log_config(settings.log_level, settings.log_format),
        # The scheme and client address of X-Forwarded-* are believed from TRUSTED_PROXIES only
        # (uvicorn's own default would believe any local process).
        proxy_headers=True,
        forwarded_allow_ips=[str(network) for network in settings.trusted_proxies.networks],
        timeout_graceful_shutdown=5,
    )
    collect_less_often()  # thousands of open streams keep a large heap alive (webapp.collector)
    StreamClosingServer(config, app).run(sockets=[listener])


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
        sys.exit(
            f"tidings: port {port} on {host} {reason}; choose another with PORT={port + 1} make run "
            f"or tidings serve --port {port + 1}"
        )
    return listener


def seed_demo(args: argparse.Namespace) -> None:
    import jobs  # noqa: F401 - installs the dispatcher: each commit hands its follow-up jobs over
    from jobs.embedded import EmbeddedJobs
    from webapp.demo import DEMO_NOTES, DEMO_PASSWORD, DEMO_USERS, follow_ups_waiting, seed

    settings = get_settings()
    # Embedded mode: the demo's jobs run here, so its notifications exist before the site starts.
    embedded = None if settings.redis_url else EmbeddedJobs(settings, None, run_scheduler=False)
    if embedded:
        embedded.start()
    try:
        created = asyncio.run(seed(settings.database_url, fresh=args.fresh))
        if embedded and created:
            asyncio.run(_until_done(lambda: follow_ups_waiting(settings.database_url), within=60))
    finally:
        if embedded:
            embedded.stop()
    if created:
        print("Demo data loaded" + (" afresh (the database was emptied first)." if args.fresh else "."))
    else:
        print("Demo data already present; nothing changed (tidings seed-demo --fresh loads it again around now).")
    print(f"Demo logins (password for all: {DEMO_PASSWORD}):")
    for email, name, role in DEMO_USERS:
        print(f"  {email:<28} {name:<18} {role}")
    for note in DEMO_NOTES:
        print(f"- {note}")


async def _until_done(waiting: Callable[[], Awaitable[int]], within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if not await waiting():
            return
        await asyncio.sleep(0.1)


def run_scheduler(_: argparse.Namespace) -> None:
    from jobs.scheduler import run_forever
    from webapp.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    run_forever()


def create_user(args: argparse.Namespace) -> None:
    from webapp.auth.services import AccountService
    from webapp.db import create_engine, create_sessionmaker
    from webapp.errors import DomainError

    password = args.password or getpass.getpass("Password: ")

    async def run() -> None:
        engine = create_engine(get_settings().database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                user = await AccountService(session).register(
                    args.email, password, args.name, args.timezone, role="admin" if args.admin else "member"
                )
                print(f"Created {user.role} {user.email} (id {user.id}).")
        finally:
            await engine.dispose()

    try:
        asyncio.run(run())
    except DomainError as exc:
        sys.exit(f"error: {exc.message}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tidings", description="Tidings: event booking with live notifications")
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser("serve", help="run the web server")
    serve_parser.add_argument("--host")
    serve_parser.add_argument("--port", type=int)
    serve_parser.set_defaults(func=serve)

    db_parser = commands.add_parser("db", help="database schema")
    db_commands = db_parser.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply all migrations").set_defaults(func=db_upgrade)

    demo_parser = commands.add_parser("seed-demo", help="load the demo data when it is not there yet")
    demo_parser.add_argument(
        "--fresh", action="store_true", help="empty the database first: the demo's times start from now again"
    )
    demo_parser.set_defaults(func=seed_demo)
    commands.add_parser("scheduler", help="run the scheduler (scaled mode; several take turns)").set_defaults(
        func=run_scheduler
    )

    user_parser = commands.add_parser("create-user", help="create an account")
    user_parser.add_argument("email")
    user_parser.add_argument("--name", required=True)
    user_parser.add_argument("--password", help="prompted for when omitted")
    user_parser.add_argument("--timezone", default="UTC")
    user_parser.add_argument("--admin", action="store_true", help="give the account the admin role")
    user_parser.set_defaults(func=create_user)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except SettingsError as exc:
        sys.exit(f"configuration error: {exc}")


if __name__ == "__main__":
    main()
