"""axe-core over every page of the app, in a real Chromium: no critical and no serious violation,
with the notification dropdown closed and open, in light and dark, on a 1280×800 desktop and a
390×844 phone. One browser context per viewport and colour scheme visits every page in it.

The pages are those of the route handlers in webapp/web/ (JSON, streams and the vendored OpenAPI
UI aside): the events list, an event (as a visitor, an attendee and its organizer), the event form
(new and edit), my bookings, paying for one, groups (with an invitation waiting) and a group,
the review form, the inbox, the profile, the notification preferences, log in, one-click
unsubscribe, sign up, the organizer's dashboard and event,
the admins' announcements and operations pages, and the error page (404).

Each page's counts by impact are printed and written to tests/e2e/artifacts/axe-counts.txt.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta

import pytest
from playwright.async_api import Page, Request, expect
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import TEST_SECRET
from tests.e2e.axe_helpers import IMPACTS, axe_violations, by_impact, describe, with_axe
from tests.e2e.conftest import ARTIFACTS_DIR, Api, ContextFactory
from tests.e2e.layout_helpers import viewport_options
from tests.e2e.notifications_helpers import (
    BELL,
    PANEL,
    ApiClient,
    Person,
    make_admin,
    open_dropdown,
    seed_notifications,
    sign_in,
)
from tests.e2e.test_security_headers_ui import event_fields
from webapp.db import utcnow
from webapp.events.models import Event
from webapp.signed_links import unsubscribe_token

COUNTS_FILE = ARTIFACTS_DIR / "axe-counts.txt"
TABS = 2


@dataclass(frozen=True)
class Site:
    """Every page, (name, path): as a visitor, and as one person who is a member, an organizer
    and an admin, with something on each page (bookings, a group, an invitation, reports...)."""

    anonymous: list[tuple[str, str]]
    signed_in: list[tuple[str, str]]


async def build_site(base_url: str, session: AsyncSession) -> tuple[Site, Person]:
    api, client = Api(base_url), ApiClient(base_url)
    ada = await client.register("ada@example.com", "Ada Admin")
    await make_admin(session, ada)
    olga = await client.register("olga@example.com", "Olga Organizer")
    bob = await client.register("bob@example.com", "Bob Member")

    own = api.create_event(ada.token, **{**event_fields("Harbour Lights"), "description": "Jazz.\n\nOn the pier."})
    api.book(bob.token, own["id"], 2)
    await client.announce(ada, "Doors open at seven", "Come early.", event_id=own["id"])
    await client.announce(ada, "Welcome to the season", "Twelve events this autumn.")
    paid = api.create_event(olga.token, **{**event_fields("Night Market"), "price_cents": 1500})
    pending = api.book(ada.token, paid["id"], 1)
    assert pending["status"] == "pending", pending
    past = api.create_event(olga.token, **event_fields("Autumn Wine Tasting"))
    api.book(ada.token, past["id"], 1)
    ended = utcnow() - timedelta(days=2)
    await session.execute(
        update(Event).where(Event.id == past["id"]).values(starts_at=ended, ends_at=ended + timedelta(hours=3))
    )
    await session.commit()
    crew = await client._request("POST", "/api/v1/groups", ada.token, json={"name": "Friday Crew"})
    await client._request("POST", f"/api/v1/groups/{crew['id']}/invitations", ada.token, json={"email": bob.email})
    bobs = await client._request("POST", "/api/v1/groups", bob.token, json={"name": "Bob's Band"})
    await client._request("POST", f"/api/v1/groups/{bobs['id']}/invitations", bob.token, json={"email": ada.email})
    await seed_notifications(
        session,
        ada,
        {"type": "payment_failed", "title": "Card declined: Night Market", "body": "Try another card."},
        {
            "type": "event_updated",
            "title": "Harbour Lights moved",
            "body": "Now at Pier 8.",
            "read": True,
            "data": {"event_id": own["id"]},  # offers "Stop updates about this event"
        },
    )
    # A muted event: listed on the preferences page, and its page says so.
    await client._request("PUT", f"/api/v1/events/{own['id']}/mute", ada.token)
    await client._request(
        "PUT", "/api/v1/me/preferences", ada.token, json={"quiet_hours": {"start": "22:00", "end": "07:00"}}
    )
    site = Site(
        anonymous=[
            ("events list", "/"),
            ("event", f"/events/{own['id']}"),
            ("log in", "/login"),
            ("sign up", "/register"),
            ("unsubscribe", f"/unsubscribe/{unsubscribe_token(bob.id, 'event_updated', TEST_SECRET)}"),
            ("404", "/no-such-page"),
        ],
        signed_in=[
            ("events list", "/"),
            ("event (organizer)", f"/events/{own['id']}"),
            ("event (paid)", f"/events/{paid['id']}"),
            ("event (ended)", f"/events/{past['id']}"),
            ("new event", "/events/new"),
            ("edit event", f"/events/{own['id']}/edit"),
            ("my bookings", "/bookings"),
            ("pay", f"/bookings/{pending['id']}/pay"),
            ("groups", "/groups"),
            ("group", f"/groups/{crew['id']}"),
            ("review", f"/events/{past['id']}/review"),
            ("inbox", "/notifications"),
            ("profile", "/profile"),
            ("preferences", "/preferences"),
            ("organizer", "/organizer"),
            ("organizer event", f"/organizer/events/{own['id']}"),
            ("admin announcements", "/admin/announcements"),
            ("admin ops", "/admin/ops"),
            ("404", f"/events/{own['id'] + 1000}"),
        ],
    )
    return site, ada


async def check(
    page: Page, combination: str, where: str, rows: list[str], problems: list[str], scope: str = "document"
) -> None:
    violations = await axe_violations(page, scope)
    counts = by_impact(violations)
    rows.append(f"{combination:<14} {where:<40} " + " ".join(f"{counts[i]:>8}" for i in IMPACTS))
    for violation in violations:
        if violation["impact"] in ("critical", "serious"):
            problems.append(f"{combination} {where}:\n{describe([violation])}")
        else:
            print(f"{combination} {where}:\n{describe([violation])}")


def requests_in_flight(page: Page) -> set[Request]:
    """The page's requests that have not finished yet (streams aside), kept up to date."""
    in_flight: set[Request] = set()
    page.on("request", lambda r: in_flight.add(r) if not r.url.endswith("/stream") else None)
    page.on("requestfinished", lambda r: in_flight.discard(r))
    page.on("requestfailed", lambda r: in_flight.discard(r))
    return in_flight


async def settle(page: Page, in_flight: set[Request]) -> None:
    """Waits for the page's own requests (a fetch its script made on load, the other tab's relay
    refetching the panel) to finish before it navigates: one cut off before the server read it is
    logged by the server as an error, and fails the test."""
    for _ in range(100):
        if not in_flight:
            return
        await page.wait_for_timeout(50)


def record(combination: str, rows: list[str]) -> None:
    """Replaces this combination's lines in the artifact, leaving the others' (each is its own test)."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    kept = []
    if COUNTS_FILE.exists():
        kept = [line for line in COUNTS_FILE.read_text().splitlines()[1:] if not line.startswith(f"{combination} ")]
    header = f"{'combination':<14} {'page':<40} " + " ".join(f"{i:>8}" for i in IMPACTS)
    COUNTS_FILE.write_text("\n".join([header, *sorted(kept + rows)]) + "\n")


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("viewport", ["desktop", "phone"])
async def test_every_page_has_no_critical_or_serious_accessibility_violation(
    viewport: str, scheme: str, new_context: ContextFactory, base_url: str, session: AsyncSession
) -> None:
    started = time.monotonic()
    site, ada = await build_site(base_url, session)
    combination = f"{viewport}-{scheme}"
    context = await new_context(**viewport_options(viewport, color_scheme=scheme, bypass_csp=True))
    await with_axe(context)
    # Two tabs share the pages: axe keeps a renderer busy, and the browser gives each tab its own.
    tabs = [await context.new_page() for _ in range(TABS)]
    rows: list[str] = []
    problems: list[str] = []

    in_flight = {tab: requests_in_flight(tab) for tab in tabs}

    async def visit(page: Page, pages: list[tuple[str, str]], signed_in: bool) -> None:
        for name, path in pages:
            await settle(page, in_flight[page])
            await page.goto(path)
            if not signed_in:
                await expect(page.locator("h1").first).to_be_visible()
                await check(page, combination, f"{name} (visitor)", rows, problems)
                continue
            await expect(page.locator(BELL)).to_be_visible()
            await check(page, combination, name, rows, problems)
            await open_dropdown(page)
            # Opening the dropdown changes nothing else on the page, which was checked closed just now.
            await check(page, combination, f"{name}, dropdown open", rows, problems, scope="#notif-root")
            await page.keyboard.press("Escape")
            await expect(page.locator(PANEL)).to_be_hidden()

    await asyncio.gather(*(visit(tab, site.anonymous[n::TABS], False) for n, tab in enumerate(tabs)))
    await sign_in(context, base_url, ada)
    await asyncio.gather(*(visit(tab, site.signed_in[n::TABS], True) for n, tab in enumerate(tabs)))
    await asyncio.gather(*(settle(tab, in_flight[tab]) for tab in tabs))

    print(f"\n{'combination':<14} {'page':<40} " + " ".join(f"{i:>8}" for i in IMPACTS))
    print("\n".join(sorted(rows)))
    record(combination, rows)
    print(f"{combination}: {len(rows)} checks in {time.monotonic() - started:.1f} s")
    assert not problems, "critical or serious accessibility violations:\n" + "\n".join(problems)
