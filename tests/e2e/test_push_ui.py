"""Web Push in a real Chromium, from the button to the click.

A server of this module's own allows the test's local push service (PUSH_ALLOWED_HOSTS). The
person enables push on the preferences page: the real service worker (/sw.js) is registered and the
subscription is posted to the server. One thing is not real: `pushManager.subscribe` itself, which
in Chromium needs its vendor's push service (out of reach here); an init script answers it with an
endpoint on the local push service and the keys the test holds. Then the real actor sends the
notification there, encrypted; the test decrypts it and hands the payload to the service worker
through the DevTools protocol (`ServiceWorker.deliverPushMessage`), sees the system notification
it shows (`registration.getNotifications()`), and clicks it. Headless Chromium cannot click a
system notification, so the click is a `notificationclick` event dispatched inside the service
worker with that notification: it runs the worker's own handler, which closes the notification and
takes the open Tidings tab to the signed link. (A synthetic event carries no user activation, so
the tab's `focus()` is refused there; `navigate()` is what is checked.)
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import BrowserContext, Page, expect

from jobs import runtime
from jobs.push import send_push
from tests.conftest import TEST_SECRET
from tests.e2e.axe_helpers import axe_violations, serious
from tests.e2e.conftest import ContextFactory, server_env, server_tracebacks
from tests.e2e.layout_helpers import VIEWPORT_NAMES, viewport_options
from tests.e2e.notifications_helpers import ApiClient, Person, seed_notifications, sign_in
from tests.push_service import BrowserKeys, LocalPushService
from tests.services import LiveServer
from webapp.push_config import PushHosts, generate_private_key, public_key_of
from webapp.settings import Settings
from webapp.signed_links import read_link

run_send_push = inspect.unwrap(send_push.fn)
VAPID_PRIVATE_KEY = generate_private_key()

# Answers pushManager.subscribe with the test's subscription (and remembers the key it was asked
# to subscribe with); getSubscription and unsubscribe follow it, across page loads.
FAKE_SUBSCRIBE = """
(() => {
  if (!("PushManager" in window)) return;
  const SUBSCRIPTION = %s;
  const stored = () => JSON.parse(localStorage.getItem("test-push-subscription") || "null");
  const wrap = (json) => json && {
    endpoint: json.endpoint,
    expirationTime: null,
    toJSON: () => json,
    unsubscribe: async () => { localStorage.removeItem("test-push-subscription"); return true; },
  };
  PushManager.prototype.subscribe = async function (options) {
    const key = new Uint8Array(options.applicationServerKey);
    const base64 = btoa(String.fromCharCode(...key));
    localStorage.setItem("test-push-key", base64.replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, ""));
    localStorage.setItem("test-push-subscription", JSON.stringify(SUBSCRIPTION));
    return wrap(SUBSCRIPTION);
  };
  PushManager.prototype.getSubscription = async function () { return wrap(stored()); };
})();
"""
NOTIFICATIONS = """async () => {
  const registration = await navigator.serviceWorker.getRegistration("/");
  const shown = registration ? await registration.getNotifications() : [];
  return shown.map((n) => ({ title: n.title, body: n.body, tag: n.tag, icon: n.icon, url: n.data && n.data.url }));
}"""
CLICK_FIRST_NOTIFICATION = """async () => {
  const [notification] = await self.registration.getNotifications();
  self.dispatchEvent(new NotificationEvent("notificationclick", { notification }));
}"""


@pytest.fixture(scope="module")
def push_service() -> Iterator[LocalPushService]:
    with LocalPushService() as service:
        yield service


@pytest.fixture(scope="module")
def push_server(
    database_url: str, push_service: LocalPushService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    log_path = tmp_path_factory.mktemp("push-server") / "server.log"
    env = {
        **server_env(database_url),
        "PUSH_ALLOWED_HOSTS": push_service.origin,
        "VAPID_PRIVATE_KEY": VAPID_PRIVATE_KEY,
    }
    server = LiveServer(env, log_path)
    server.env["PUBLIC_URL"] = server.url
    server.start()
    try:
        yield server
    finally:
        server.stop()
    problems = server_tracebacks(log_path)
    assert problems is None, f"the push test server logged exceptions:\n{problems}"


@pytest_asyncio.fixture
async def worker_runtime(
    settings: Settings, push_server: LiveServer, push_service: LocalPushService
) -> AsyncIterator[None]:
    """The send_push actor, run here, configured as the server is."""
    runtime.configure(
        replace(
            settings,
            secret_key=TEST_SECRET,
            public_url=push_server.url,
            vapid_private_key=VAPID_PRIVATE_KEY,
            vapid_public_key=public_key_of(VAPID_PRIVATE_KEY),
            push_allowed_hosts=PushHosts.parse(push_service.origin),
        )
    )
    yield
    await runtime.dispose()
    runtime.configure(None)  # type: ignore[arg-type]


async def signed_in(
    new_context: ContextFactory, server: LiveServer, viewport: str, email: str, **options: Any
) -> tuple[BrowserContext, Person]:
    person = await ApiClient(server.url).register(email, "Pat Push")
    context = await new_context(
        **viewport_options(viewport, base_url=server.url, permissions=["notifications"], **options)
    )
    await sign_in(context, server.url, person)
    return context, person


async def service_worker_registration(page: Page) -> tuple[Any, str]:
    """A DevTools session on the page, and the id of the site's service worker registration."""
    cdp = await page.context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda event: registrations.extend(event["registrations"]))
    await cdp.send("ServiceWorker.enable")
    for _ in range(50):
        live = [r for r in registrations if not r.get("isDeleted")]
        if live:
            return cdp, live[-1]["registrationId"]
        await asyncio.sleep(0.1)
    raise AssertionError("the service worker registration never showed up")


async def shown_notifications(page: Page, count: int) -> list[dict[str, Any]]:
    for _ in range(50):
        shown: list[dict[str, Any]] = await page.evaluate(NOTIFICATIONS)
        if len(shown) == count:
            return shown
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {count} notification(s), the worker shows {shown}")


@pytest.mark.parametrize("viewport", VIEWPORT_NAMES)
async def test_enable_push_then_a_sent_push_shows_and_its_click_opens_the_signed_link(
    new_context: ContextFactory,
    push_server: LiveServer,
    push_service: LocalPushService,
    worker_runtime: None,
    session: Any,
    viewport: str,
    shot: Any,
) -> None:
    context, person = await signed_in(new_context, push_server, viewport, f"push-{viewport}@example.com")
    keys = BrowserKeys()
    endpoint = push_service.endpoint(f"browser-{viewport}")
    page = await context.new_page()
    refused: list[str] = []  # the site's Content-Security-Policy holds for the worker and push.js
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    await page.add_init_script(FAKE_SUBSCRIBE % json.dumps(keys.subscription(endpoint)))
    await page.goto("/preferences")
    section = page.get_by_role("region", name="Push notifications")
    enable = section.get_by_role("button", name="Enable push on this device")
    await expect(section.get_by_text("No device has push on yet.")).to_be_visible()
    await enable.click()
    await expect(section.get_by_role("status")).to_have_text("Push is on for this device.")
    device = section.get_by_role("listitem")
    await expect(device).to_have_count(1)
    await expect(device).to_contain_text("this device")
    await expect(section.get_by_role("button", name="Disable on this device")).to_be_visible()
    await expect(enable).to_be_hidden()
    await shot(page, f"push-enabled-{viewport}")
    # The page subscribed with the server's VAPID key, and the real worker controls the page.
    assert await page.evaluate("localStorage.getItem('test-push-key')") == public_key_of(VAPID_PRIVATE_KEY)
    await page.wait_for_function("navigator.serviceWorker.controller !== null")

    (notification_id,) = await seed_notifications(
        session, person, {"type": "payment_failed", "title": "Payment failed", "body": "Your card was declined."}
    )
    await run_send_push(user_id=person.id, notification_ids=[notification_id])
    (request,) = push_service.to(f"browser-{viewport}")
    payload = keys.decrypt(request.body)
    claims = read_link(payload["url"].removeprefix(f"{push_server.url}/n/"), "open", TEST_SECRET)
    assert claims is not None and (claims.user_id, claims.target) == (person.id, str(notification_id))

    cdp, registration_id = await service_worker_registration(page)
    await cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": push_server.url, "registrationId": registration_id, "data": json.dumps(payload)},
    )
    (shown,) = await shown_notifications(page, 1)
    assert shown["title"] == "Payment failed" and shown["body"] == "Your card was declined."
    assert shown["url"] == payload["url"] and shown["tag"] == payload["tag"]

    # A newer push with the same tag (topic) replaces the notification rather than adding one.
    newer = {**payload, "title": "Payment failed again"}
    await cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": push_server.url, "registrationId": registration_id, "data": json.dumps(newer)},
    )
    for _ in range(50):
        (shown,) = await shown_notifications(page, 1)
        if shown["title"] == "Payment failed again":
            break
        await asyncio.sleep(0.1)
    assert shown["title"] == "Payment failed again"

    (worker,) = [w for w in context.service_workers if w.url.endswith("/sw.js")]
    # The open tab goes to the signed link, which marks the item read and opens it.
    async with page.expect_response(payload["url"]) as opened:
        await worker.evaluate(CLICK_FIRST_NOTIFICATION)
    assert (await opened.value).request.frame == page.main_frame
    await page.wait_for_url(lambda url: "/preferences" not in url)
    listed = await ApiClient(push_server.url).notifications(person)
    [item] = [n for n in listed["items"] if n["id"] == notification_id]
    assert item["read_at"] is not None
    # And the notification was closed (asked of the worker: the page is navigating).
    assert await worker.evaluate("async () => (await self.registration.getNotifications()).length") == 0
    assert refused == []


@pytest.mark.parametrize("viewport", VIEWPORT_NAMES)
async def test_a_device_is_removed_from_the_list_and_disabled_on_this_device(
    new_context: ContextFactory, push_server: LiveServer, push_service: LocalPushService, viewport: str
) -> None:
    # bypass_csp: axe is injected as an inline script.
    context, person = await signed_in(
        new_context, push_server, viewport, f"push-remove-{viewport}@example.com", bypass_csp=True
    )
    page = await context.new_page()
    await page.add_init_script(FAKE_SUBSCRIBE % json.dumps(BrowserKeys().subscription(push_service.endpoint(viewport))))
    await page.goto("/preferences")
    section = page.get_by_role("region", name="Push notifications")
    await section.get_by_role("button", name="Enable push on this device").click()
    await expect(section.get_by_role("listitem")).to_have_count(1)
    assert serious(await axe_violations(page, ".push-devices"), f"push devices, {viewport}") == []

    await section.get_by_role("button", name="Disable on this device").click()
    await expect(section.get_by_role("status")).to_have_text("Push is off for this device.")
    await expect(section.get_by_text("No device has push on yet.")).to_be_visible()
    assert await page.evaluate("localStorage.getItem('test-push-subscription')") is None  # unsubscribed

    await section.get_by_role("button", name="Enable push on this device").click()
    remove = section.get_by_role("button", name="Remove")
    await expect(remove).to_have_count(1)
    await remove.click()
    await expect(section.get_by_text("No device has push on yet.")).to_be_visible()
    assert (await ApiClient(push_server.url)._request("GET", "/api/v1/me/push-subscriptions", person.token))[
        "items"
    ] == []


async def test_a_browser_without_the_push_api_is_told_so(new_context: ContextFactory, push_server: LiveServer) -> None:
    context, _ = await signed_in(new_context, push_server, "desktop", "push-unsupported@example.com")
    page = await context.new_page()
    await page.add_init_script("delete window.PushManager;")
    await page.goto("/preferences")
    section = page.get_by_role("region", name="Push notifications")
    await expect(section.get_by_role("status")).to_have_text("This browser does not support push notifications.")
    await expect(section.get_by_role("button", name="Enable push on this device")).to_be_hidden()


async def test_push_stays_off_and_says_why_when_the_browser_blocks_notifications(
    new_context: ContextFactory, push_server: LiveServer, push_service: LocalPushService
) -> None:
    person = await ApiClient(push_server.url).register("push-refused@example.com", "Pat Push")
    context = await new_context(base_url=push_server.url)  # the notifications permission is not granted
    await sign_in(context, push_server.url, person)
    page = await context.new_page()
    await page.add_init_script(FAKE_SUBSCRIBE % json.dumps(BrowserKeys().subscription(push_service.endpoint("no"))))
    await page.goto("/preferences")
    section = page.get_by_role("region", name="Push notifications")
    await section.get_by_role("button", name="Enable push on this device").click()
    await expect(section.get_by_role("status")).to_have_text(
        "Notifications are blocked for this site in the browser's settings."
    )
    await expect(section.get_by_role("button", name="Enable push on this device")).to_be_hidden()
    await expect(section.get_by_text("No device has push on yet.")).to_be_visible()
