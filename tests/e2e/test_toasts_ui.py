"""Toasts and the connection state in a real Chromium: a burst shows at most three toasts and a
summary, a replay after a reconnect shows one summary, each toast can be closed, pauses while
hovered or focused and is reached by keyboard, toasts never cover the bell or the open dropdown,
screen readers hear one polite live region with summaries, success and failure look different,
and "Reconnecting…" shows while the stream is down.

Screenshots go to tests/e2e/artifacts/ (light and dark).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, Route, expect
from sqlalchemy.ext.asyncio import AsyncSession

from tests.e2e.axe_helpers import axe_violations, describe, serious
from tests.e2e.conftest import ContextFactory, Screenshots, server_env, server_tracebacks
from tests.e2e.layout_helpers import VIEWPORT_NAMES, box, dark, viewport_box, viewport_options
from tests.e2e.notifications_helpers import (
    BELL,
    PANEL,
    PANEL_ITEMS,
    ApiClient,
    Person,
    expect_badge,
    open_app,
    open_dropdown,
    seed_notifications,
    sign_in,
    stream_report,
    wait_in_page,
)
from tests.e2e.test_notifications_ui import admin_and_member, toast
from tests.e2e.test_security_headers_ui import event_fields
from tests.services import LiveServer

TOASTS = "#toasts .toast"
SUMMARY = "#toasts .toast-summary"
INDICATOR = "#connection-status"
LIVE_REGIONS = "[aria-live], [role=status], [role=alert], [role=log]"
ONE = re.compile(r"^New notification: (.+)$")
MANY = re.compile(r"^(\d+) new notifications$")

# Records, inside the page, the most toasts ever shown at once and every text the live region said.
RECORDER = """() => {
    window.__maxToasts = 0;
    window.__said = [];
    const toasts = document.getElementById("toasts");
    const region = document.querySelector("[aria-live]");
    new MutationObserver(() => {
        window.__maxToasts = Math.max(window.__maxToasts, toasts.querySelectorAll(".toast").length);
    }).observe(toasts, { childList: true, subtree: true });
    new MutationObserver(() => {
        const text = region.textContent.trim();
        if (text) window.__said.push(text);
    }).observe(region, { childList: true, characterData: true, subtree: true });
}"""


async def member_watching(
    new_context: ContextFactory, base_url: str, session: AsyncSession, **options: Any
) -> tuple[ApiClient, Person, Page]:
    """An admin (who may announce to everyone) and Bob, whose page holds the stream."""
    client, admin, bob = await admin_and_member(base_url, session)
    context = await new_context(**options)
    await sign_in(context, base_url, bob)
    return client, admin, await open_app(context, stream=True)


async def toast_lifetime(page: Page, ms: int) -> None:
    """How long a toast stays (the page reads data-lifetime-ms when it shows one)."""
    await page.evaluate(f"document.getElementById('toasts').dataset.lifetimeMs = '{ms}'")


def counted(said: list[str]) -> int:
    """How many notifications the live region's announcements speak of, together."""
    total = 0
    for text in said:
        if ONE.match(text):
            total += 1
        elif many := MANY.match(text):
            total += int(many.group(1))
    return total


def announcements_of_notifications(said: list[str]) -> list[str]:
    return [text for text in said if ONE.match(text) or MANY.match(text)]


# --- a burst ------------------------------------------------------------------------------------


@pytest.mark.parametrize("viewport", VIEWPORT_NAMES)
async def test_a_burst_of_ten_shows_at_most_three_toasts_with_a_summary(
    viewport: str, new_context: ContextFactory, shot: Screenshots, base_url: str, session: AsyncSession
) -> None:
    client, admin, page = await member_watching(new_context, base_url, session, **viewport_options(viewport))
    await page.evaluate(RECORDER)

    await asyncio.gather(*(client.announce(admin, f"Burst {n}: doors at seven") for n in range(1, 11)))
    await expect_badge(page, 10, within_ms=10_000)
    summary = page.locator(SUMMARY)
    await expect(summary).to_have_count(1)
    singles = page.locator(f"{TOASTS}:not(.toast-summary)")
    shown_alone = await singles.count()
    await expect(summary).to_contain_text(f"{10 - shown_alone} new notifications")
    assert shown_alone <= 2, f"{shown_alone} single toasts beside the summary"
    assert await page.evaluate("window.__maxToasts") <= 3, "more than three toasts were shown at once"
    await expect(summary.get_by_role("link", name=f"{10 - shown_alone} new notifications")).to_have_attribute(
        "href", "/notifications"
    )
    await shot(page, f"{viewport}-burst-of-ten")

    # One polite live region on the page, the toasts are not live regions of their own, and it
    # spoke in summaries: a handful of announcements that together account for all ten.
    regions = page.locator(LIVE_REGIONS)
    await expect(regions).to_have_count(1)
    await expect(regions).to_have_attribute("aria-live", "polite")
    await page.wait_for_timeout(2_000)  # the region speaks at most once a second
    said = announcements_of_notifications(await page.evaluate("window.__said"))
    print(f"\nthe live region said: {said}")
    assert 1 <= len(said) <= 3, f"the live region was flooded: {said}"
    assert counted(said) == 10, f"the announcements account for {counted(said)} of 10: {said}"


# --- a reconnect that replays ------------------------------------------------------------------


async def test_a_dropped_stream_shows_reconnecting_and_its_replay_one_summary_toast(
    new_context: ContextFactory, shot: Screenshots, database_url: str, session: AsyncSession, tmp_path: Path
) -> None:
    # Streams end every 2 s and reconnect: with the stream requests refused, the page is offline.
    server = LiveServer({**server_env(database_url), "STREAM_MAX_LIFETIME_SECONDS": "2"}, tmp_path / "server.log")
    await asyncio.to_thread(server.start)
    try:
        bob = await ApiClient(server.url).register("bob@example.com", "Bob Member")
        context = await new_context(base_url=server.url)
        await sign_in(context, server.url, bob)
        page = await open_app(context, stream=True)
        await page.evaluate(RECORDER)
        indicator = page.locator(INDICATOR)
        await expect(indicator).to_be_hidden()

        async def refuse(route: Route) -> None:
            await route.abort("internetdisconnected")

        await context.route("**/notifications/stream*", refuse)
        try:
            await expect(indicator).to_be_visible(timeout=10_000)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{await stream_report(page)}") from None
        await expect(indicator).to_have_text(re.compile("Reconnecting…"))
        assert (await box(indicator)).inside(await viewport_box(page))
        assert not (await box(indicator)).intersects(await box(page.locator(BELL)))
        await wait_in_page(page, "window.__said.some(t => t.startsWith('Reconnecting'))", within_ms=2_000)
        await shot(page, "reconnecting")
        await dark(page, shot, "reconnecting")

        missed = [f"Missed {n}: the quartet plays a second set" for n in range(1, 9)]
        await seed_notifications(session, bob, *({"type": "general", "title": title} for title in missed))
        await page.wait_for_timeout(500)
        await expect(indicator).to_be_visible()  # still down: nothing got through
        await context.unroute("**/notifications/stream*", refuse)

        await expect_badge(page, 8, within_ms=20_000)
        await expect(indicator).to_be_hidden()
        await expect(page.locator(SUMMARY)).to_have_count(1)
        await expect(page.locator(SUMMARY)).to_contain_text("8 new notifications")
        await expect(page.locator(TOASTS)).to_have_count(1)
        assert await page.evaluate("window.__maxToasts") == 1, "the replay showed toasts one by one"
        await wait_in_page(page, "window.__said.some(t => /^8 new notifications$/.test(t))", within_ms=3_000)
        said = await page.evaluate("window.__said")
        print(f"\nthe live region said: {said}")
        assert announcements_of_notifications(said) == ["8 new notifications"], said
        assert said[-2:] == ["Live notifications are back.", "8 new notifications"] or said[-2:] == [
            "8 new notifications",
            "Live notifications are back.",
        ], said
        print(await stream_report(page))
        await shot(page, "replayed-as-one-summary")
        await open_dropdown(page)
        await expect(page.locator(PANEL_ITEMS)).to_have_count(8)
        await context.close()  # an open stream holds a stopping server for its whole grace period
    finally:
        await asyncio.to_thread(server.stop)
    summary = server_tracebacks(server.log_path)
    assert summary is None, f"the server logged exceptions:\n{summary}"


# --- one toast: close, pause, keyboard ---------------------------------------------------------


async def test_a_toast_closes_pauses_on_hover_and_focus_and_is_reached_by_keyboard(
    new_context: ContextFactory, shot: Screenshots, base_url: str, session: AsyncSession
) -> None:
    client, admin, page = await member_watching(new_context, base_url, session)
    await toast_lifetime(page, 1_500)

    # Hover: it stays while the pointer is on it, and goes once the pointer leaves.
    await client.announce(admin, "Hover keeps me", "The terrace opens at six.")
    hovered = toast(page, "Hover keeps me")
    await expect(hovered).to_be_visible()
    await hovered.hover()
    await page.wait_for_timeout(2_500)
    await expect(hovered).to_be_visible()
    await shot(page, "hovered-toast-stays")
    await page.mouse.move(5, 400)
    await expect(hovered).to_have_count(0, timeout=3_000)

    # Keyboard: Tab reaches the toast's link and its close button; focus keeps it.
    await client.announce(admin, "Focus keeps me", "Bring a coat.")
    focused = toast(page, "Focus keeps me")
    await expect(focused).to_be_visible()
    await page.locator("body").focus()
    for _ in range(60):
        await page.keyboard.press("Tab")
        if await focused.evaluate("e => e.contains(document.activeElement)"):
            break
    else:
        pytest.fail("Tab never reached the toast")
    await expect(focused.get_by_role("link")).to_be_focused()
    await page.wait_for_timeout(2_500)
    await expect(focused).to_be_visible()
    await page.keyboard.press("Tab")
    close = focused.get_by_role("button", name="Dismiss: Focus keeps me")
    await expect(close).to_be_focused()
    await shot(page, "focused-close-button")
    await page.keyboard.press("Enter")
    await expect(focused).to_have_count(0)
    await expect(page.locator(BELL)).to_be_focused()  # focus does not fall back to the page's start

    # Escape inside a toast dismisses it; a blurred toast's timer runs again.
    await client.announce(admin, "Escape closes me")
    escaped = toast(page, "Escape closes me")
    await escaped.get_by_role("link").focus()
    await page.keyboard.press("Escape")
    await expect(escaped).to_have_count(0)
    await client.announce(admin, "Blur lets me go")
    blurred = toast(page, "Blur lets me go")
    await blurred.get_by_role("link").focus()
    await page.wait_for_timeout(2_000)
    await expect(blurred).to_be_visible()
    await page.locator("main h1").click()
    await expect(blurred).to_have_count(0, timeout=3_000)

    # Every toast's close button has a name; a click closes it.
    await toast_lifetime(page, 60_000)
    await client.announce(admin, "Click the cross")
    crossed = toast(page, "Click the cross")
    await crossed.get_by_role("button", name="Dismiss: Click the cross").click()
    await expect(crossed).to_have_count(0)


# --- where toasts are drawn --------------------------------------------------------------------


@pytest.mark.parametrize("viewport", VIEWPORT_NAMES)
async def test_toasts_never_cover_the_bell_or_the_open_dropdown(
    viewport: str, new_context: ContextFactory, shot: Screenshots, base_url: str, session: AsyncSession
) -> None:
    client, admin, page = await member_watching(new_context, base_url, session, **viewport_options(viewport))
    await toast_lifetime(page, 60_000)

    async def expect_clear(step: str, panel_open: bool) -> int:
        bell = await box(page.locator(BELL))
        panel = await box(page.locator(PANEL)) if panel_open else None
        screen = await viewport_box(page)
        visible = 0
        for shown in await page.locator(TOASTS).all():
            if not await shown.is_visible():
                continue
            visible += 1
            toast_box = await box(shown)
            print(f"\n{viewport}, {step}: toast {toast_box}; bell {bell}; panel {panel}")
            assert toast_box.inside(screen), f"{step}: a toast leaves the viewport"
            assert not toast_box.intersects(bell), f"{step}: a toast ({toast_box}) covers the bell ({bell})"
            if panel:
                assert not toast_box.intersects(panel), f"{step}: a toast ({toast_box}) covers the panel ({panel})"
        return visible

    for n in range(1, 4):
        await client.announce(admin, f"Toast {n}: Harbour Lights moved to the upper deck", "Doors at seven.")
        await expect(page.locator(TOASTS)).to_have_count(n)
    assert await expect_clear("three toasts", panel_open=False) == 3
    await shot(page, f"{viewport}-three-toasts")

    await open_dropdown(page)
    visible = await expect_clear("dropdown open", panel_open=True)
    await client.announce(admin, "Toast 4: arrives while the dropdown is open")
    await expect(page.locator(f"{PANEL} .notif-item").filter(has_text="Toast 4")).to_have_count(1)
    await expect(page.locator(SUMMARY)).to_have_count(1)
    visible = await expect_clear("a fourth while the dropdown is open", panel_open=True)
    if viewport == "desktop":
        assert visible == 3, "on a desktop the toasts move aside, still shown"
    await shot(page, f"{viewport}-dropdown-open-with-toasts")
    await dark(page, shot, f"{viewport}-dropdown-open-with-toasts")

    # Closing a toast leaves the dropdown open, and it takes the room the toast had.
    before = await box(page.locator(PANEL))
    await page.locator(SUMMARY).get_by_role("button", name=re.compile("^Dismiss")).click()
    await expect(page.locator(SUMMARY)).to_have_count(0)
    await expect(page.locator(PANEL)).to_be_visible()
    assert (await box(page.locator(PANEL))).height >= before.height
    await expect_clear("a toast closed while the dropdown is open", panel_open=True)

    await page.locator(BELL).click()
    await expect(page.locator(PANEL)).to_be_hidden()
    assert await expect_clear("dropdown closed again", panel_open=False) == 2
    await shot(page, f"{viewport}-dropdown-closed-toasts-back")


# --- success and failure -----------------------------------------------------------------------


async def test_success_and_failure_toasts_look_different(
    new_context: ContextFactory, shot: Screenshots, base_url: str, session: AsyncSession
) -> None:
    client = ApiClient(base_url)
    olga = await client.register("olga@example.com", "Olga Organizer")
    bob = await client.register("bob@example.com", "Bob Member")
    paid = {**event_fields("Harbour Lights Jazz Night"), "price_cents": 2500}
    event: dict[str, Any] = await client._request("POST", "/api/v1/events", olga.token, json=paid)
    context = await new_context()
    await sign_in(context, base_url, bob)
    page = await open_app(context, stream=True)
    await toast_lifetime(page, 60_000)

    async def looks(kind: str) -> dict[str, list[str]]:
        """The toast of that kind, as it arrives: its tone and colours in light and dark; then closed
        (another kind arriving while three are shown would fold into a summary)."""
        shown = page.locator(f"{TOASTS}[data-type='{kind}']")
        await expect(shown).to_have_count(1, timeout=10_000)
        tone = re.search(r"toast-(success|failure|warning|info)", await shown.get_attribute("class") or "")
        colours: dict[str, list[str]] = {"tone": [tone.group(1) if tone else "none"]}
        for scheme in ("light", "dark"):
            await page.emulate_media(color_scheme=scheme)
            colours[scheme] = await shown.evaluate(
                """e => {
                    const s = getComputedStyle(e), icon = getComputedStyle(e.querySelector(".toast-icon"));
                    return [s.backgroundColor, s.borderLeftColor, icon.color, icon.backgroundColor];
                }"""
            )
            await shot(page, f"{kind}-toast-{scheme}")
        await page.emulate_media(color_scheme="light")
        await shown.get_by_role("button", name=re.compile("^Dismiss")).click()
        await expect(shown).to_have_count(0)
        return colours

    booking = await client._request("POST", f"/api/v1/events/{event['id']}/bookings", bob.token, json={"seats": 2})
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        declined = await http.post(
            f"/api/v1/bookings/{booking['id']}/pay",
            json={"card_number": "4000000000000002"},
            headers={"Authorization": f"Bearer {bob.token}"},
        )
    assert declined.status_code == 402, declined.text
    failed = await looks("payment_failed")
    await client._request(
        "POST", f"/api/v1/bookings/{booking['id']}/pay", bob.token, json={"card_number": "4242424242424242"}
    )
    confirmed = await looks("booking_confirmed")
    await client._request("POST", f"/api/v1/events/{event['id']}/cancel", olga.token)
    cancelled = await looks("event_cancelled")

    print(f"\npayment_failed {failed}\nbooking_confirmed {confirmed}\nevent_cancelled {cancelled}")
    assert failed["tone"] == ["failure"] and confirmed["tone"] == ["success"], (failed, confirmed)
    assert cancelled["tone"][0] in ("warning", "failure"), cancelled
    for scheme in ("light", "dark"):
        assert failed[scheme][:2] != confirmed[scheme][:2], f"{scheme}: payment failed looks like a confirmation"
        assert failed[scheme][2:] != confirmed[scheme][2:], f"{scheme}: the same icon colours"
        assert cancelled[scheme][:2] != confirmed[scheme][:2], f"{scheme}: event cancelled looks like a confirmation"


# --- accessibility ------------------------------------------------------------------------------


async def test_toasts_and_the_reconnecting_state_have_no_serious_accessibility_violations(
    new_context: ContextFactory, shot: Screenshots, base_url: str, session: AsyncSession
) -> None:
    # axe is added as a script tag, which the Content-Security-Policy refuses (see test_notifications_ui.py).
    client, admin, page = await member_watching(new_context, base_url, session, bypass_csp=True)
    await toast_lifetime(page, 60_000)
    for n in range(1, 5):
        await client.announce(admin, f"Checked {n}: the quartet plays a second set", "Doors at seven.")
    await expect(page.locator(SUMMARY)).to_have_count(1)
    await page.evaluate("document.dispatchEvent(new CustomEvent('tidings:error', {detail: {message: 'Refused.'}}))")
    await expect(page.locator(TOASTS)).to_have_count(3)
    # The indicator as the page shows it while the stream is down (the stream itself stays up).
    await page.evaluate("document.getElementById('connection-status').hidden = false")
    problems = []
    for scheme in ("light", "dark"):
        await page.emulate_media(color_scheme=scheme)
        await shot(page, f"toasts-checked-by-axe-{scheme}")
        for where in ("#toasts", "#connection-status"):
            problems += serious(await axe_violations(page, where), f"{where}, {scheme}")
    assert not problems, "serious or critical accessibility violations:\n" + describe(problems)
