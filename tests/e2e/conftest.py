"""Browser end-to-end fixtures: a live `python -m tidings` server, one Chromium per session,
a fresh browser context (fresh cookies and storage) per test, and full-page screenshots.

Every test under tests/e2e is marked `e2e`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, Response, async_playwright, expect

from tests.conftest import DEFAULT_PASSWORD, TEST_SECRET, wait_for_live_jobs
from tests.services import LiveServer

E2E_DIR = Path(__file__).resolve().parent
ARTIFACTS_DIR = E2E_DIR / "artifacts"
PLAIN_HTTP_HOST = "tidings.test"
SYSTEM_CHROMIUM = (Path("/usr/bin/chromium"), Path("/usr/lib/chromium/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # A plain-HTTP origin reached by a host name: not a secure context (no Web Locks, no
    # crypto.randomUUID), as a LAN or intranet deployment without TLS is.
    f"--host-resolver-rules=MAP {PLAIN_HTTP_HOST} 127.0.0.1",
]
ACTION_TIMEOUT_MS = 10_000
EXPECT_TIMEOUT_MS = 5_000


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


# --- the server -------------------------------------------------------------------------------


def server_env(database_url: str) -> dict[str, str]:
    """The live server's environment; also for tests that start (and restart) a server of their own."""
    return {
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET,
        "LOG_LEVEL": "WARNING",
        # Journeys announce far more often than a real admin may (the default is 10 an hour).
        "ANNOUNCEMENTS_PER_HOUR": "100000",
        # The operations page's figures move within a second, not ten (tests/e2e/test_ops_page_ui.py).
        "OPS_SAMPLE_SECONDS": "0.5",
    }


def server_tracebacks(log_path: Path, start: int = 0) -> str | None:
    """A summary of the exceptions a server logged after byte `start` of its log, or None."""
    if not log_path.exists():
        return None
    with log_path.open("rb") as log:
        log.seek(start)
        new = log.read().decode(errors="replace")
    return _summarize_tracebacks(new) if "Traceback" in new else None


@pytest.fixture(scope="package")
def live_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log_path = tmp_path_factory.mktemp("e2e-server") / "server.log"
    server = LiveServer(server_env(database_url), log_path)
    server.env["ALLOWED_ORIGINS"] = f"{server.url},{plain_http_origin(server)}"
    server.start()
    try:
        yield server
    finally:
        server.stop()


def plain_http_origin(server: LiveServer) -> str:
    """The server by host name over plain HTTP (the browser maps the name to 127.0.0.1)."""
    return f"http://{PLAIN_HTTP_HOST}:{server.port}"


@pytest.fixture(autouse=True)
def no_server_errors(live_server: LiveServer) -> Iterator[None]:
    """A journey fails if the server logged an exception while it ran, even when every page looked
    fine: the browser's own background requests (e.g. /favicon.ico) are invisible to the test."""
    start = live_server.log_path.stat().st_size if live_server.log_path.exists() else 0
    yield  # set up first, so torn down last: after this test's browser contexts are closed
    summary = server_tracebacks(live_server.log_path, start)
    if summary:
        pytest.fail(f"the server logged exceptions during this test:\n{summary}", pytrace=False)


@pytest.fixture(autouse=True)
async def jobs_settled(engine: Any, no_server_errors: None) -> AsyncIterator[None]:
    """After no_server_errors's check (so torn down before it) and before the database is emptied: the
    jobs this test started have ended, and what they logged is this test's."""
    yield
    await wait_for_live_jobs(engine)


def _summarize_tracebacks(log: str) -> str:
    """One line per distinct final exception, with a count (the full log is in the server log file)."""
    finals: dict[str, int] = {}
    lines = log.splitlines()
    for at, line in enumerate(lines):
        if not line.startswith("Traceback (most recent call last)"):
            continue
        # The exception line is the first unindented one after the frames, whatever the log format.
        final = next((later for later in lines[at + 1 :] if later.strip() and not later[0].isspace()), "?")
        finals[final] = finals.get(final, 0) + 1
    return "\n".join(f"  {count} x {final}" for final, count in finals.items())


@pytest.fixture
def base_url(live_server: LiveServer) -> str:
    return live_server.url


# --- the browser ------------------------------------------------------------------------------


def _chromium_executable() -> str | None:
    for path in SYSTEM_CHROMIUM:
        if path.exists():
            return str(path)
    return None  # Playwright's own downloaded browser


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=_chromium_executable(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


ContextFactory = Callable[..., Awaitable[BrowserContext]]


@pytest_asyncio.fixture(loop_scope="session")
async def new_context(browser: Browser, base_url: str) -> AsyncIterator[ContextFactory]:
    """Opens fresh, isolated browser contexts (a new 'user-data': no cookies, no storage).

    Keyword arguments go to `Browser.new_context` over the defaults, e.g. permissions=["notifications"],
    or base_url= for a server the test started itself."""
    contexts: list[BrowserContext] = []
    problems: list[str] = []

    def watch(page: Page) -> None:
        def on_response(response: Response) -> None:
            if "/static/" in response.url and response.status >= 400:
                problems.append(f"{response.status} for asset {response.url}")

        page.on("pageerror", lambda error: problems.append(f"JavaScript error on {page.url}: {error}"))
        page.on("response", on_response)

    async def open_context(**options: Any) -> BrowserContext:
        defaults: dict[str, Any] = {
            "base_url": base_url,
            "viewport": {"width": 1280, "height": 800},
            "locale": "en-GB",
            "timezone_id": "UTC",
        }
        context = await browser.new_context(**{**defaults, **options})
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        context.on("page", watch)
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        await context.close()
    assert not problems, "the browser saw problems:\n" + "\n".join(problems)


@pytest_asyncio.fixture(loop_scope="session")
async def context(new_context: ContextFactory) -> BrowserContext:
    return await new_context()


@pytest_asyncio.fixture(loop_scope="session")
async def page(context: BrowserContext) -> Page:
    return await context.new_page()


# --- screenshots ------------------------------------------------------------------------------


class Screenshots:
    """Saves tests/e2e/artifacts/<test>-<nn>-<label>.png, numbered in the order taken."""

    def __init__(self, test_name: str, directory: Path = ARTIFACTS_DIR) -> None:
        self.prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name).strip("_")
        self.directory = directory
        self.count = 0
        self.paths: list[Path] = []
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob(f"{self.prefix}-*.png"):
            stale.unlink()

    async def __call__(self, page: Page, label: str) -> Path:
        self.count += 1
        slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "page"
        path = self.directory / f"{self.prefix}-{self.count:02d}-{slug}.png"
        await page.wait_for_load_state("load")
        # The top bar is sticky: capture from the top, or a scrolled page shows it mid-image.
        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(path=str(path), full_page=True, animations="disabled")
        self.paths.append(path)
        return path


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Screenshots:
    return Screenshots(request.node.name)


# --- seeding through the JSON API (fast set-up for what a test is not about) -------------------


class Api:
    """Drives the live server's JSON API, for set-up that is not the journey under test."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def _post(self, path: str, json: dict[str, Any], token: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.post(f"{self.base_url}{path}", json=json, headers=headers, timeout=10)
        assert response.status_code in (200, 201), f"{path}: {response.status_code} {response.text}"
        return response.json()  # type: ignore[no-any-return]

    def register(self, email: str, name: str, password: str = DEFAULT_PASSWORD, timezone: str = "UTC") -> str:
        body = self._post(
            "/api/v1/auth/register", {"email": email, "password": password, "name": name, "timezone": timezone}
        )
        return str(body["token"])

    def create_event(self, token: str, **fields: Any) -> dict[str, Any]:
        return self._post("/api/v1/events", fields, token)

    def book(self, token: str, event_id: int, seats: int) -> dict[str, Any]:
        return self._post(f"/api/v1/events/{event_id}/bookings", {"seats": seats}, token)

    def pay(self, token: str, booking_id: int, card_number: str) -> dict[str, Any]:
        return self._post(f"/api/v1/bookings/{booking_id}/pay", {"card_number": card_number}, token)


@pytest.fixture
def api(base_url: str) -> Api:
    return Api(base_url)
