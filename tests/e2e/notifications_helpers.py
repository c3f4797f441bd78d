"""Set-up and probes for the notification UI journeys (tests/e2e/test_notifications_ui.py).

People are made through the JSON API and signed in by handing their browser context the access
cookie the web login would set; notifications come from the real producer (announcements) or,
where the server must not be involved, straight from NotificationService in the test's session.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from playwright.async_api import BrowserContext, Locator, Page, Request, Response, expect
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import DEFAULT_PASSWORD
from webapp.auth.middleware import ACCESS_COOKIE
from webapp.notifications.services import NewNotification, NotificationService

BADGE = "#notif-badge"
BELL = "#notif-bell"
PANEL = "#notif-panel"
PANEL_ITEMS = "#notif-panel [data-notification-id]"


@dataclass(frozen=True)
class Person:
    id: int
    email: str
    name: str
    token: str


class ApiClient:
    """The live server's JSON API, asynchronously (the browser keeps running while we wait)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    async def _request(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10) as client:
            response = await client.request(method, path, headers=headers, **kwargs)
        assert response.status_code in (200, 201, 202), f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    async def register(self, email: str, name: str, timezone: str = "UTC") -> Person:
        body = await self._request(
            "POST",
            "/api/v1/auth/register",
            json={"email": email, "password": DEFAULT_PASSWORD, "name": name, "timezone": timezone},
        )
        return Person(id=int(body["user"]["id"]), email=email, name=name, token=str(body["token"]))

    async def announce(self, sender: Person, title: str, body: str = "", event_id: int | None = None) -> float:
        """Sends an announcement; returns the wall-clock time (time.time()) at which the call returned."""
        data: dict[str, Any] = {"title": title, "body": body}
        if event_id is not None:
            data["event_id"] = event_id
        answer = await self._request("POST", "/api/v1/announcements", sender.token, json=data)
        returned = time.time()
        assert answer["status"] == "accepted" and answer["recipients"] > 0, answer
        return returned

    async def notifications(self, person: Person, **params: Any) -> dict[str, Any]:
        return await self._request("GET", "/api/v1/notifications", person.token, params=params)  # type: ignore[no-any-return]

    async def unread_count(self, person: Person) -> int:
        body = await self._request("GET", "/api/v1/notifications/unread_count", person.token)
        return int(body["unread_count"])


async def make_admin(session: AsyncSession, person: Person) -> None:
    await session.execute(text("UPDATE users SET role = 'admin' WHERE id = :id"), {"id": person.id})
    await session.commit()


async def seed_notifications(session: AsyncSession, person: Person, *items: dict[str, Any]) -> list[int]:
    """Adds notifications for `person` directly in the database (no doorbell rings from here);
    an item with read=True is marked read afterwards. Returns the ids, in the order given."""
    service = NotificationService(session)
    created = await service.notify_many(
        [
            NewNotification(user_id=person.id, **{k: v for k, v in item.items() if k != "read"})  # type: ignore[arg-type]
            for item in items
        ]
    )
    await session.commit()
    ids = [n.id for n in created]
    for notification_id, item in zip(ids, items, strict=True):
        if item.get("read"):
            await service.mark_read(person.id, notification_id)
    await session.commit()
    return ids


async def sign_in(context: BrowserContext, base_url: str, person: Person) -> None:
    """The same access cookie the login form sets (a JWT, like the API's bearer token)."""
    await context.add_cookies([{"name": ACCESS_COOKIE, "value": person.token, "url": base_url, "httpOnly": True}])


async def open_app(context: BrowserContext, path: str = "/", *, stream: bool = False) -> Page:
    """A new tab at `path`. stream=True: this tab is expected to open the inbox stream (it is the
    first of its browser), and is returned once the server has answered the stream request (the
    server subscribes the stream before it answers, so nothing rung after this is missed)."""
    page = await context.new_page()
    await page.add_init_script(STREAM_LOG)
    if stream:
        async with page.expect_response(lambda r: "/notifications/stream" in r.url) as connected:
            await page.goto(path)
        answer = await connected.value
        assert answer.status == 200, f"the stream answered {answer.status}"
    else:
        await page.goto(path)
    await expect(page.locator(BELL)).to_be_visible()
    return page


def badge(page: Page) -> Locator:
    return page.locator(BADGE)


async def expect_badge(page: Page, count: int, within_ms: float = 5_000) -> None:
    """The badge shows `count` (hidden at zero), and the bell's accessible name says the same."""
    try:
        await _expect_badge(page, count, within_ms)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{await stream_report(page)}") from None


async def _expect_badge(page: Page, count: int, timeout: float) -> None:  # noqa: ASYNC109
    if count == 0:
        await expect(badge(page)).to_be_hidden(timeout=timeout)
        await expect(page.locator(BELL)).to_have_attribute("aria-label", "Notifications", timeout=timeout)
    else:
        await expect(badge(page)).to_be_visible(timeout=timeout)
        await expect(badge(page)).to_have_text(str(count) if count <= 99 else "99+", timeout=timeout)
        await expect(page.locator(BELL)).to_have_attribute(
            "aria-label", f"Notifications, {count} unread", timeout=timeout
        )


async def open_dropdown(page: Page) -> Locator:
    """Clicks the bell and waits for the panel's contents to arrive; returns the panel."""
    panel = page.locator(PANEL)
    async with page.expect_response(lambda r: r.url.endswith("/notifications/panel")) as answer:
        await page.locator(BELL).click()
    assert (await answer.value).status == 200
    await expect(panel).to_be_visible()
    await expect(page.locator(BELL)).to_have_attribute("aria-expanded", "true")
    await expect(panel.get_by_role("heading", name="Notifications")).to_be_visible()
    return panel


def item(scope: Page | Locator, notification_id: int) -> Locator:
    return scope.locator(f'[data-notification-id="{notification_id}"]')


async def record_badge_changes(page: Page, expected: str) -> None:
    """Starts polling the badge in the page (every 5 ms, independent of the test's event loop);
    window.__badgeAt is set to Date.now() when it first shows `expected`."""
    await page.evaluate(
        """expected => {
            window.__badgeAt = null;
            const badge = document.getElementById("notif-badge");
            const timer = setInterval(() => {
                if (!badge.hidden && badge.textContent.trim() === expected) {
                    window.__badgeAt = Date.now();
                    clearInterval(timer);
                }
            }, 5);
        }""",
        expected,
    )


async def wait_in_page(page: Page, expression: str, within_ms: float) -> None:
    """Waits until `expression` is true in the page. Not `page.wait_for_function`: that compiles the
    expression with eval inside the page, which the site's Content-Security-Policy refuses; evaluate
    runs from outside. The page's own timers record when things happened (e.g. window.__badgeAt)."""
    deadline = time.monotonic() + within_ms / 1000
    for _ in range(int(within_ms / 10) + 1):
        if await page.evaluate(expression):
            return
        if time.monotonic() > deadline:
            break
        await page.wait_for_timeout(10)
    raise AssertionError(f"{expression!r} did not become true within {within_ms:.0f} ms")


async def wait_for_leader(pages: list[Page], within_s: float = 5.0) -> Page:
    """The one tab holding the stream (its #notif-root has data-stream-leader=true)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        leaders = [p for p in pages if await p.locator("#notif-root").get_attribute("data-stream-leader") == "true"]
        if leaders:
            assert len(leaders) == 1, f"{len(leaders)} tabs claim to lead the stream"
            return leaders[0]
        await pages[0].wait_for_timeout(50)
    raise AssertionError("no tab became the stream leader")


class StreamRequests:
    """The inbox streams a browser context's tabs have asked for, and which are still open: a
    stream request ends (finished or failed) when its tab closes or the stream drops."""

    def __init__(self, context: BrowserContext) -> None:
        self.requested: list[Request] = []
        self.answered: list[Response] = []
        self._ended: list[Request] = []
        context.on("request", lambda r: self.requested.append(r) if _is_stream(r.url) else None)
        context.on("response", lambda r: self.answered.append(r) if _is_stream(r.url) else None)
        context.on("requestfinished", lambda r: self._ended.append(r) if _is_stream(r.url) else None)
        context.on("requestfailed", lambda r: self._ended.append(r) if _is_stream(r.url) else None)

    def open(self) -> list[Request]:
        return [
            r for r in self.requested if not any(r is ended for ended in self._ended) and not r.frame.page.is_closed()
        ]


def _is_stream(url: str) -> bool:
    return "/notifications/stream" in url


# Records what the page hands to the Notification API, and makes the page look hidden (a tab in
# the background), which is when Tidings shows browser notifications.
NOTIFICATION_SPY = """
(() => {
  const Real = window.Notification;
  const calls = [];
  Object.defineProperty(window, "__notifications", { value: calls });
  function Recorded(title, options = {}) {
    calls.push({ title, body: options.body, tag: options.tag });
    try {
      return new Real(title, options);
    } catch (error) {
      return { close() {}, onclick: null };
    }
  }
  Object.defineProperty(Recorded, "permission", { get: () => "granted" });
  Recorded.requestPermission = () => Promise.resolve("granted");
  if (Real) Recorded.prototype = Real.prototype;
  window.Notification = Recorded;
  Object.defineProperty(Document.prototype, "hidden", { get: () => true, configurable: true });
  Object.defineProperty(Document.prototype, "visibilityState", { get: () => "hidden", configurable: true });
})();
"""


# What this tab's stream did (events bubble from the hidden #notif-stream element), for reports.
STREAM_LOG = """
(() => {
  const log = [];
  Object.defineProperty(window, "__streamLog", { value: log });
  const note = (what) => log.push(`${(performance.now() / 1000).toFixed(2)}s ${what}`);
  for (const kind of ["notification", "count", "read", "reset"]) {
    document.addEventListener(kind, (e) => {
      if (e.target.id === "notif-stream") note(`${kind} id=${e.detail.id} ${String(e.detail.data).slice(0, 120)}`);
    });
  }
  document.addEventListener("htmx:sse:after:connection", (e) => note(`connected (${e.detail.connection.status})`));
  document.addEventListener("htmx:sse:error", (e) => note(`error ${e.detail.error}`));
  document.addEventListener("htmx:sse:close", (e) => note(`closed (${e.detail.reason})`));
})();
"""


async def stream_report(page: Page) -> str:
    """The tab's inbox position, whether it leads, and what its stream received."""
    if page.is_closed():
        return "(the tab is closed)"
    state = await page.evaluate(
        """() => ({
            url: location.pathname,
            inbox: window.tidingsInbox,
            leader: document.getElementById("notif-root")?.dataset.streamLeader ?? null,
            log: window.__streamLog || [],
        })"""
    )
    lines = "\n".join(f"    {line}" for line in state["log"]) or "    (nothing)"
    return (
        f"  tab {state['url']}: inbox {state['inbox']}, stream leader: {state['leader']}, "
        f"now {await page.evaluate('(performance.now() / 1000).toFixed(2)')}s; stream events:\n{lines}"
    )
