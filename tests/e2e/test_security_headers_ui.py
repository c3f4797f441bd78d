"""The security headers in a real Chromium: another origin cannot frame Tidings, the policy refuses
inline script, and the main pages raise no Content-Security-Policy violation while they still work
(log in, the event page, the bell and its dropdown, mark read, open an item, the inbox filters, the
booking's confirmation, the OpenAPI UI)."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Dialog, Response, expect
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import DEFAULT_PASSWORD
from tests.e2e.conftest import Api, ContextFactory
from tests.e2e.notifications_helpers import BELL, ApiClient, expect_badge, item, open_dropdown, seed_notifications

UNREAD = re.compile(r"\bis-unread\b")


class OtherSite:
    """A second local web server, on its own port: a page of another origin."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                body = pages.get(self.path, "not here").encode()
                self.send_response(200 if self.path in pages else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def other_site() -> Iterator[OtherSite]:
    site = OtherSite()
    try:
        yield site
    finally:
        site.close()


async def test_another_origin_cannot_frame_tidings(
    new_context: ContextFactory, base_url: str, api: Api, other_site: OtherSite
) -> None:
    organizer = api.register("olga@example.com", "Olga Organizer")
    event = api.create_event(organizer, **event_fields("Harbour Lights"))
    targets = {"login": f"{base_url}/login", "event": f"{base_url}/events/{event['id']}"}
    frames = "".join(f'<iframe id="{name}" src="{url}" title="{name}"></iframe>' for name, url in targets.items())
    other_site.pages["/"] = f'<!doctype html><title>Another site</title><iframe id="own" src="/own"></iframe>{frames}'
    other_site.pages["/own"] = '<!doctype html><p id="own-content">framed fine</p>'
    page = await (await new_context()).new_page()
    answers: dict[str, Response] = {}
    page.on("response", lambda response: answers.setdefault(response.url, response))

    await page.goto(f"{other_site.url}/")
    await page.wait_for_load_state("load")  # the load event waits for every frame
    # The other site can frame its own pages: what stops Tidings is Tidings' answer.
    await expect(page.frame_locator("#own").locator("#own-content")).to_have_text("framed fine")
    for name, url in targets.items():
        answer = answers.get(url)
        assert answer is not None and answer.status == 200, f"Tidings did not answer the {name} frame"
        headers = await answer.all_headers()
        assert "frame-ancestors 'none'" in headers.get("content-security-policy", ""), name
        assert headers.get("x-frame-options") == "DENY", name
        frame = await (await page.locator(f"#{name}").element_handle()).content_frame()  # type: ignore[union-attr]
        assert frame is not None
        assert not frame.url.startswith(base_url), f"the {name} page was framed: {frame.url}"
        assert await page.frame_locator(f"#{name}").locator(".topbar, main").count() == 0, f"{name} shows Tidings"


async def test_the_policy_refuses_inline_script(new_context: ContextFactory) -> None:
    """The watch the next test relies on sees a violation, and the browser enforces the policy: an
    inline event handler and an inline script added to a page do not run."""
    context = await new_context()
    violations = await watch_csp(context)
    page = await context.new_page()
    await page.goto("/login")
    await page.evaluate(
        """() => {
            document.body.insertAdjacentHTML(
                "beforeend", '<img id="probe" src="/static/icons/favicon.svg" onload="window.__handlerRan = true">');
            const script = document.createElement("script");
            script.textContent = "window.__scriptRan = true";
            document.body.append(script);
        }"""
    )
    await expect(page.locator("#probe")).to_have_js_property("complete", True)
    blocked = await eventually(lambda: [v for v in violations if v["directive"].startswith("script-src")], 2)
    assert len(blocked) == 2, violations  # the handler and the script
    assert await page.evaluate("[window.__handlerRan, window.__scriptRan]") == [None, None]


async def test_main_pages_raise_no_csp_violation_and_still_work(
    new_context: ContextFactory, base_url: str, api: Api, session: AsyncSession
) -> None:
    organizer = api.register("olga@example.com", "Olga Organizer")
    event = api.create_event(organizer, **event_fields("Harbour Lights"))
    client = ApiClient(base_url)
    bob = await client.register("bob@example.com", "Bob Member")
    booking = api.book(bob.token, event["id"], 1)
    assert booking["status"] == "confirmed"
    # Its confirmation is a notification too, made by a job: wait for it, so the counts below hold.
    for _ in range(100):
        if await client.unread_count(bob) == 1:
            break
        await asyncio.sleep(0.05)
    assert await client.unread_count(bob) == 1, "the booking's confirmation did not arrive"
    entrance, confirmed = await seed_notifications(
        session,
        bob,
        {"type": "general", "title": "Pier 7 has a new entrance"},
        {"type": "booking_confirmed", "title": "Seats confirmed: Harbour Lights", "url": "/bookings"},
    )
    context = await new_context()
    violations = await watch_csp(context)
    page = await context.new_page()
    documents: list[Response] = []
    page.on("response", lambda r: documents.append(r) if r.request.resource_type == "document" else None)
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)

    # Log in through the form.
    await page.goto("/login")
    await page.get_by_label("Email").fill(bob.email)
    await page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{base_url}/")
    await expect(page.locator(BELL)).to_be_visible()
    await expect(page.locator("#event-list")).to_contain_text("Harbour Lights")
    await expect_badge(page, 3)  # the two above and the booking's confirmation

    # The event page.
    await page.goto(f"/events/{event['id']}")
    await expect(page.get_by_role("heading", name="Harbour Lights")).to_be_visible()

    # The inbox page, with the bell's dropdown opened; mark one read from the dropdown.
    await page.goto("/notifications")
    panel = await open_dropdown(page)
    await expect(item(panel, entrance)).to_have_class(UNREAD)
    await item(panel, entrance).get_by_role("button", name="Mark as read: Pier 7 has a new entrance").click()
    await expect(item(panel, entrance)).not_to_have_class(UNREAD)
    await expect_badge(page, 2)
    # The filters submit themselves (a script file, not an inline onchange).
    await page.get_by_label("Show").select_option("unread")
    await page.wait_for_url(re.compile(r"status=unread"))
    await expect(page.locator("#inbox-list [data-notification-id]")).to_have_count(2)

    # Opening an item from the dropdown follows its link and reads it (a same-origin click).
    panel = await open_dropdown(page)
    await item(panel, confirmed).locator(".notif-link").click()
    await page.wait_for_url(f"{base_url}/bookings")
    await expect_badge(page, 1)
    assert await client.unread_count(bob) == 1

    # Cancelling a booking asks first (a script file, not an inline onsubmit); saying no keeps it.
    questions: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        questions.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", dismiss)
    await page.locator(f"#booking-{booking['id']}").get_by_role("button", name="Cancel").click()
    assert await eventually(lambda: questions, 1) == ["Cancel this booking?"]
    await expect(page.locator(f"#booking-{booking['id']} .status")).to_have_text("confirmed")

    # The OpenAPI UI, from the app's own files.
    await page.goto("/schema")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("Tidings API")
    await expect(page.locator(".swagger-ui .opblock").first).to_be_visible()

    for document in documents:
        if document.url.startswith(base_url):
            policy = (await document.all_headers()).get("content-security-policy", "")
            assert "script-src 'self'" in policy, f"{document.url} has no Content-Security-Policy"
    assert violations == [], violations
    assert console == [], console


async def eventually(collect: Callable[[], list[Any]], count: int, within_s: float = 5.0) -> list[Any]:
    """What `collect` returns once it holds `count` items (or whatever it holds after `within_s`)."""
    deadline = time.monotonic() + within_s
    for _ in range(int(within_s / 0.05)):
        if len(collect()) >= count or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    return collect()


async def watch_csp(context: BrowserContext) -> list[dict[str, Any]]:
    """Every Content-Security-Policy violation any page of the context reports, across navigations."""
    violations: list[dict[str, Any]] = []
    await context.expose_binding("__reportCsp", lambda _source, violation: violations.append(violation))
    await context.add_init_script(
        """document.addEventListener("securitypolicyviolation", (event) => window.__reportCsp({
            directive: event.violatedDirective, blocked: event.blockedURI, page: location.href,
            source: `${event.sourceFile}:${event.lineNumber}`, sample: event.sample,
        }));"""
    )
    return violations


def event_fields(title: str) -> dict[str, Any]:
    starts = (datetime.now(UTC) + timedelta(days=5)).replace(microsecond=0)
    return {
        "title": title,
        "venue": "Pier 7",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=3)).isoformat(),
        "timezone": "Europe/Berlin",
        "capacity": 40,
        "price_cents": 0,
        "currency": "EUR",
    }
