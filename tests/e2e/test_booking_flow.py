"""The main journeys through Tidings, driven in a real Chromium against a live server.

Each test takes a full-page screenshot of every page it visits (tests/e2e/artifacts/).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.async_api import Locator, Page, expect

from tests.conftest import DEFAULT_PASSWORD
from tests.e2e.conftest import Api, ContextFactory, Screenshots

LOCAL_INPUT = "%Y-%m-%dT%H:%M"  # what a datetime-local input takes


@dataclass(frozen=True)
class EventInput:
    title: str
    description: str
    venue: str
    starts: datetime  # aware, in `timezone`
    ends: datetime
    timezone: str
    capacity: int
    price: str
    currency: str


def local_at(zone: str, days_ahead: int, hour: int, minute: int = 0) -> datetime:
    day = datetime.now(ZoneInfo(zone)) + timedelta(days=days_ahead)
    return day.replace(hour=hour, minute=minute, second=0, microsecond=0)


def shown_time(moment: datetime) -> str:
    """How the pages print a moment in its own zone, e.g. 'Sat 29 Nov 2025, 19:30 CET'."""
    return moment.strftime("%a %d %b %Y, %H:%M ") + (moment.tzname() or "")


def jazz_night() -> EventInput:
    zone = "Europe/Berlin"
    return EventInput(
        title="Harbour Lights Jazz Night",
        description="A quartet on the pier.\n\nDoors open half an hour early.",
        venue="Pier 7, Hamburg",
        starts=local_at(zone, 5, 19, 30),
        ends=local_at(zone, 5, 22, 15),
        timezone=zone,
        capacity=40,
        price="25.00",
        currency="EUR",
    )


# --- steps a person takes ---------------------------------------------------------------------


async def register(page: Page, shot: Screenshots, *, name: str, email: str, timezone: str = "UTC") -> None:
    await page.goto("/register")
    await expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    await page.get_by_label("Time zone").fill(timezone)
    await shot(page, "register-form")
    await page.get_by_role("button", name="Create account").click()
    await page.wait_for_url("/")
    await expect_logged_in_as(page, name)
    await shot(page, "registered-home")


async def log_in(page: Page, shot: Screenshots, *, email: str, expected_path: str = "/") -> None:
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    await shot(page, "login-form")
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(lambda url: _path(url) == expected_path)
    await shot(page, f"logged-in-{expected_path.strip('/') or 'home'}")


async def log_out(page: Page, shot: Screenshots) -> None:
    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url("/")
    nav_user = page.locator(".nav-user")
    await expect(nav_user.get_by_role("link", name="Log in")).to_be_visible()
    await expect(nav_user.get_by_role("link", name="Sign up")).to_be_visible()
    await expect(page.get_by_role("link", name="My bookings")).to_have_count(0)
    await shot(page, "logged-out")


async def expect_logged_in_as(page: Page, name: str) -> None:
    nav_user = page.locator(".nav-user")
    await expect(nav_user.get_by_role("link", name=name)).to_be_visible()
    await expect(nav_user.get_by_role("button", name="Log out")).to_be_visible()
    await expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="My bookings")).to_be_visible()


async def fill_event_form(page: Page, event: EventInput) -> None:
    await page.get_by_label("Title").fill(event.title)
    await page.get_by_label("Description").fill(event.description)
    await page.get_by_label("Venue").fill(event.venue)
    await page.get_by_label("Starts").fill(event.starts.strftime(LOCAL_INPUT))
    await page.get_by_label("Ends").fill(event.ends.strftime(LOCAL_INPUT))
    await page.get_by_label("Event time zone").fill(event.timezone)
    await page.get_by_label("Capacity").fill(str(event.capacity))
    await page.get_by_label("Price per seat").fill(event.price)
    await page.get_by_label("Currency").fill(event.currency)


async def create_event(page: Page, shot: Screenshots, event: EventInput, *, organizer: str) -> int:
    await page.goto("/")
    await page.get_by_role("link", name="Create an event").click()
    await page.wait_for_url("/events/new")
    await expect(page.get_by_role("heading", name="Create an event")).to_be_visible()
    await shot(page, "new-event-form-empty")
    await fill_event_form(page, event)
    await shot(page, "new-event-form-filled")
    await page.get_by_role("button", name="Create event").click()
    await page.wait_for_url(re.compile(r"/events/\d+$"))
    event_id = int(_path(page.url).rsplit("/", 1)[1])
    await expect_event_detail(page, event, organizer=organizer, seats_left=event.capacity)
    await shot(page, "event-detail")
    return event_id


async def expect_event_detail(page: Page, event: EventInput, *, organizer: str, seats_left: int) -> None:
    await expect(page.get_by_role("heading", level=1)).to_have_text(event.title)
    facts = page.locator("dl.facts")
    await expect(_fact(facts, "When")).to_contain_text(shown_time(event.starts))
    await expect(_fact(facts, "Ends")).to_have_text(shown_time(event.ends))
    await expect(_fact(facts, "Where")).to_have_text(event.venue)
    await expect(_fact(facts, "Organizer")).to_have_text(organizer)
    await expect(_fact(facts, "Seats")).to_have_text(f"{seats_left} of {event.capacity} left")
    for paragraph in event.description.split("\n\n"):
        await expect(page.locator(".description")).to_contain_text(paragraph)
    await expect(page.locator(".price-tag")).to_have_text(f"{event.price} {event.currency}")


def _fact(facts: Locator, term: str) -> Locator:
    return facts.locator(f"dt:text-is('{term}') + dd")


def _path(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1].split("?", 1)[0] if "://" in url else url


async def search_and_open(page: Page, shot: Screenshots, *, query: str, title: str, hidden_title: str) -> None:
    """Types into the live search box; htmx swaps in the matches without leaving the page."""
    await page.goto("/")
    cards = page.locator("#event-list .event-card")
    await expect(cards.filter(has_text=hidden_title)).to_have_count(1)
    await shot(page, "events-list")
    search = page.get_by_role("searchbox", name="Search events")
    async with page.expect_response(lambda r: "/events/_list" in r.url and f"q={query}" in r.url) as response:
        await search.press_sequentially(query, delay=30)
    assert (await response.value).status == 200
    await expect(cards).to_have_count(1)
    await expect(cards.first.get_by_role("heading")).to_have_text(title)
    assert _path(page.url) == "/", "the search should filter in place, not navigate"
    await shot(page, "events-search-results")
    await cards.first.click()
    await page.wait_for_url(re.compile(r"/events/\d+$"))


async def book_seats(page: Page, shot: Screenshots, seats: int) -> int:
    await page.get_by_label("Seats", exact=True).fill(str(seats))
    await page.get_by_role("button", name="Book", exact=True).click()
    await page.wait_for_url(re.compile(r"/bookings/\d+/pay$"))
    await expect(page.get_by_role("heading", name="Pay for your booking")).to_be_visible()
    await shot(page, "payment-form")
    return int(_path(page.url).split("/")[2])


async def pay(page: Page, card_number: str) -> None:
    await page.get_by_label("Card number").fill(card_number)
    await page.get_by_role("button", name=re.compile(r"^Pay ")).click()
    await page.wait_for_load_state("load")


def booking_row(page: Page, booking_id: int) -> Locator:
    return page.locator(f"#booking-{booking_id}")


# --- the journeys -----------------------------------------------------------------------------


async def test_organizer_registers_and_creates_an_event(page: Page, shot: Screenshots) -> None:
    await register(page, shot, name="Olga Organizer", email="olga@example.com", timezone="Europe/Berlin")
    event = jazz_night()
    event_id = await create_event(page, shot, event, organizer="Olga Organizer")

    await page.get_by_role("link", name="Events", exact=True).click()
    await page.wait_for_url("/")
    card = page.locator(f"#event-list a[href='/events/{event_id}']")
    await expect(card).to_contain_text(event.title)
    await expect(card).to_contain_text(event.venue)
    await expect(card).to_contain_text("25.00 EUR")
    await expect(card).to_contain_text("40 seats left")
    await shot(page, "events-list-with-new-event")

    # Last, so that everything above is checked either way: the blank line typed into the
    # description separates two paragraphs on the event page.
    await card.click()
    await page.wait_for_url(f"/events/{event_id}")
    await expect(page.locator(".description p")).to_have_text(event.description.split("\n\n"))


async def test_member_finds_event_books_two_seats_and_pays(
    new_context: ContextFactory, shot: Screenshots, api: Api
) -> None:
    organizer_page = await (await new_context()).new_page()
    await register(organizer_page, shot, name="Olga Organizer", email="olga@example.com", timezone="Europe/Berlin")
    event = jazz_night()
    event_id = await create_event(organizer_page, shot, event, organizer="Olga Organizer")
    other = api.register("poet@example.com", "Paul Poet")
    decoy = local_at("UTC", 6, 18)
    api.create_event(
        other,
        title="Quiet Poetry Evening",
        venue="Library Hall",
        starts_at=decoy.isoformat(),
        ends_at=(decoy + timedelta(hours=2)).isoformat(),
        timezone="UTC",
        capacity=30,
        price_cents=0,
        currency="EUR",
    )

    page = await (await new_context()).new_page()
    await register(page, shot, name="Mia Member", email="mia@example.com", timezone="Europe/London")
    await log_out(page, shot)
    await page.get_by_role("link", name="Log in").click()
    await page.wait_for_url("/login")
    await log_in(page, shot, email="mia@example.com")
    await expect_logged_in_as(page, "Mia Member")

    await search_and_open(page, shot, query="harbour", title=event.title, hidden_title="Quiet Poetry Evening")
    assert _path(page.url) == f"/events/{event_id}"
    await expect_event_detail(page, event, organizer="Olga Organizer", seats_left=40)
    await shot(page, "event-detail")

    booking_id = await book_seats(page, shot, 2)
    summary = page.locator("aside .card")
    await expect(summary).to_contain_text(event.title)
    await expect(summary).to_contain_text("2 seats · 50.00 EUR")
    await expect(summary.locator(".status")).to_have_text("pending")
    await expect(page.get_by_role("button", name="Pay 50.00 EUR")).to_be_visible()

    await pay(page, "4242 4242 4242 4242")
    await page.wait_for_url("/bookings")
    await expect(page.get_by_role("heading", name="My bookings")).to_be_visible()
    await expect(page.locator("main").get_by_role("status")).to_contain_text("Payment received: you're booked for")
    row = booking_row(page, booking_id)
    await expect(row.get_by_role("link", name=event.title)).to_be_visible()
    await expect(row.locator("td").nth(2)).to_have_text("2")
    await expect(row.locator("td").nth(3)).to_have_text("50.00 EUR")
    await expect(row.locator(".status")).to_have_text("confirmed")
    await expect(row.get_by_role("link", name="Pay")).to_have_count(0)
    await shot(page, "my-bookings-confirmed")

    await row.get_by_role("link", name=event.title).click()
    await page.wait_for_url(f"/events/{event_id}")
    await expect(_fact(page.locator("dl.facts"), "Seats")).to_have_text("38 of 40 left")
    await shot(page, "event-detail-after-booking")


async def test_declined_card_leaves_the_booking_pending(page: Page, shot: Screenshots, api: Api) -> None:
    organizer = api.register("olga@example.com", "Olga Organizer")
    starts = local_at("Europe/Berlin", 5, 19, 30)
    event = api.create_event(
        organizer,
        title="Harbour Lights Jazz Night",
        venue="Pier 7, Hamburg",
        starts_at=starts.isoformat(),
        ends_at=(starts + timedelta(hours=3)).isoformat(),
        timezone="Europe/Berlin",
        capacity=40,
        price_cents=2500,
        currency="EUR",
    )
    member = api.register("mia@example.com", "Mia Member", timezone="Europe/London")
    earlier = api.book(member, event["id"], 2)
    assert api.pay(member, earlier["id"], "4242424242424242")["status"] == "confirmed"

    await page.goto("/login")
    await log_in(page, shot, email="mia@example.com")
    await page.locator(f"#event-list a[href='/events/{event['id']}']").click()
    await page.wait_for_url(f"/events/{event['id']}")
    await expect(_fact(page.locator("dl.facts"), "Seats")).to_have_text("38 of 40 left")
    await shot(page, "event-detail")

    booking_id = await book_seats(page, shot, 1)
    assert booking_id != earlier["id"]
    async with page.expect_response(lambda r: r.url.endswith(f"/bookings/{booking_id}/pay")) as response:
        await pay(page, "4000 0000 0000 0002")
    assert (await response.value).status == 402
    assert _path(page.url) == f"/bookings/{booking_id}/pay"
    await expect(page.get_by_role("alert")).to_contain_text("declined")
    await expect(page.locator(".field.has-error #f-card")).to_be_visible()
    attempts = page.locator("aside .card li")
    await expect(attempts).to_have_count(1)
    await expect(attempts.first).to_contain_text("failed")
    await expect(attempts.first).to_contain_text("card ending 0002")
    await expect(page.locator("aside .card > p .status")).to_have_text("pending")
    await expect(page.get_by_role("button", name="Pay 25.00 EUR")).to_be_visible()
    await shot(page, "payment-declined")

    await page.get_by_role("navigation", name="Main").get_by_role("link", name="My bookings").click()
    await page.wait_for_url("/bookings")
    await expect(page.locator("main").get_by_role("status")).to_have_count(0)
    pending = booking_row(page, booking_id)
    await expect(pending.locator(".status")).to_have_text("pending")
    await expect(pending.get_by_role("link", name="Pay")).to_be_visible()
    await expect(booking_row(page, earlier["id"]).locator(".status")).to_have_text("confirmed")
    await shot(page, "my-bookings-pending")


async def test_form_errors_show_inline_and_keep_what_was_typed(page: Page, shot: Screenshots) -> None:
    await page.goto("/register")
    await page.get_by_label("Name").fill("Sam Short")
    await page.get_by_label("Email").fill("sam@example.com")
    password = page.get_by_label("Password")
    await password.fill("short")
    await page.get_by_role("button", name="Create account").click()
    # The browser's own check (minlength=10) stops the form first...
    assert await password.evaluate("el => el.validity.tooShort")
    assert _path(page.url) == "/register"
    await shot(page, "register-blocked-by-browser")

    # ...and the server says the same inline when that check is bypassed.
    await password.evaluate("el => el.removeAttribute('minlength')")
    async with page.expect_response(lambda r: r.url.endswith("/register") and r.request.method == "POST") as sent:
        await page.get_by_role("button", name="Create account").click()
    assert (await sent.value).status == 422
    await expect(page.locator("#e-password")).to_have_text("Use at least 10 characters.")
    await expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_label("Password")).to_have_value("")
    await expect(page.get_by_label("Name")).to_have_value("Sam Short")
    await expect(page.get_by_label("Email")).to_have_value("sam@example.com")
    await expect(page.locator(".field-error")).to_have_count(1)
    await shot(page, "register-short-password")

    await page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await page.wait_for_url("/")
    await expect_logged_in_as(page, "Sam Short")
    await shot(page, "registered-home")

    zone = "America/New_York"
    bad = EventInput(
        title="Backwards Breakfast",
        description="Ends before it starts.",
        venue="Corner Café",
        starts=local_at(zone, 6, 10),
        ends=local_at(zone, 6, 9),
        timezone=zone,
        capacity=12,
        price="7.50",
        currency="USD",
    )
    await page.goto("/events/new")
    await shot(page, "new-event-form-empty")
    await fill_event_form(page, bad)
    async with page.expect_response(lambda r: r.url.endswith("/events/new") and r.request.method == "POST") as sent:
        await page.get_by_role("button", name="Create event").click()
    assert (await sent.value).status == 422
    assert _path(page.url) == "/events/new"
    await expect(page.get_by_role("alert")).to_have_text("Please correct the highlighted fields.")
    await expect(page.locator("#e-ends_at")).to_have_text("The event must end after it starts.")
    await expect(page.get_by_label("Ends")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator(".field-error")).to_have_count(1)
    await expect(page.get_by_label("Title")).to_have_value(bad.title)
    await expect(page.get_by_label("Description")).to_have_value(bad.description)
    await expect(page.get_by_label("Venue")).to_have_value(bad.venue)
    await expect(page.get_by_label("Starts")).to_have_value(bad.starts.strftime(LOCAL_INPUT))
    await expect(page.get_by_label("Ends")).to_have_value(bad.ends.strftime(LOCAL_INPUT))
    await expect(page.get_by_label("Event time zone")).to_have_value(zone)
    await expect(page.get_by_label("Capacity")).to_have_value("12")
    await expect(page.get_by_label("Price per seat")).to_have_value("7.50")
    await expect(page.get_by_label("Currency")).to_have_value("USD")
    await shot(page, "event-form-ends-before-starts")

    fixed = local_at(zone, 6, 11, 30)
    await page.get_by_label("Ends").fill(fixed.strftime(LOCAL_INPUT))
    await page.get_by_role("button", name="Create event").click()
    await page.wait_for_url(re.compile(r"/events/\d+$"))
    await expect_event_detail(
        page,
        EventInput(**{**bad.__dict__, "ends": fixed}),
        organizer="Sam Short",
        seats_left=12,
    )
    await shot(page, "event-detail-after-fix")


async def test_anonymous_visitor_is_sent_to_login_and_back(page: Page, shot: Screenshots, api: Api) -> None:
    api.register("mia@example.com", "Mia Member")

    await page.goto("/bookings")
    await page.wait_for_url(lambda url: _path(url) == "/login")
    await shot(page, "redirected-to-login")
    assert page.url.endswith("/login?next=%2Fbookings")
    await expect(page.locator("input[name=next]")).to_have_value("/bookings")
    await expect(page.get_by_role("link", name="My bookings")).to_have_count(0)

    await log_in(page, shot, email="mia@example.com", expected_path="/bookings")
    await expect_logged_in_as(page, "Mia Member")
    await expect(page.get_by_role("heading", name="My bookings")).to_be_visible()
    await expect(page.locator(".empty")).to_contain_text("No bookings yet.")
    await expect(page.get_by_role("link", name="My bookings")).to_have_class("active")
