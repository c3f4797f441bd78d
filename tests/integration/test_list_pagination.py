"""Events and bookings are listed in pages, the way notifications are: `limit`, `cursor`, and
`next_cursor` in the answer (null on the last page), with a bounded default and maximum."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.api import bearer, register
from tests.integration.rows import insert_booking, insert_event
from webapp.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE


async def walk(client, url: str, limit: int, headers: dict[str, str] | None = None) -> list[list[int]]:
    """Every page of a list, following next_cursor until it is null."""
    pages: list[list[int]] = []
    cursor = None
    while True:
        query = f"limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        separator = "&" if "?" in url else "?"
        response = await client.get(f"{url}{separator}{query}", headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        pages.append([item["id"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "next_cursor never ends"


async def test_events_are_paged_in_start_order_without_losing_events_that_start_at_the_same_time(client, session):
    organizer, _ = await register(client)
    # Three events share a start, so a cursor on the start time alone would skip or repeat one.
    starts = [timedelta(days=3), timedelta(days=1), timedelta(days=2), timedelta(days=2), timedelta(days=2)]
    events = [await insert_event(session, organizer["id"], starts_in=s, title=f"Gig {i}") for i, s in enumerate(starts)]
    expected = [e.id for e in sorted(events, key=lambda e: (e.starts_at, e.id))]

    pages = await walk(client, "/api/v1/events", limit=2)
    assert pages == [expected[0:2], expected[2:4], expected[4:5]]
    searched = await walk(client, "/api/v1/events?q=gig", limit=3)
    assert [i for page in searched for i in page] == expected


async def test_the_event_list_has_a_bounded_default_page(client, session):
    organizer, _ = await register(client)
    for n in range(DEFAULT_PAGE_SIZE + 1):
        await insert_event(session, organizer["id"], starts_in=timedelta(days=1, minutes=n))
    first = (await client.get("/api/v1/events")).json()
    assert len(first["items"]) == DEFAULT_PAGE_SIZE and first["next_cursor"]
    rest = (await client.get(f"/api/v1/events?cursor={first['next_cursor']}")).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None


async def test_bookings_are_paged_newest_first(client, session):
    organizer, _ = await register(client)
    guest, token = await register(client)
    event = await insert_event(session, organizer["id"], starts_in=timedelta(days=4), capacity=50)
    bookings = [await insert_booking(session, event, guest["id"]) for _ in range(5)]
    expected = [b.id for b in sorted(bookings, key=lambda b: (b.created_at, b.id), reverse=True)]

    pages = await walk(client, "/api/v1/bookings", limit=2, headers=bearer(token))
    assert pages == [expected[0:2], expected[2:4], expected[4:5]]
    default = (await client.get("/api/v1/bookings", headers=bearer(token))).json()
    assert [b["id"] for b in default["items"]] == expected and default["next_cursor"] is None


@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/bookings"])
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        (f"limit={MAX_PAGE_SIZE + 1}", "limit"),
        ("limit=ten", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=MjAyNy0wMS0wMVQwMDowMDowMCswMDowMHx4", "cursor"),  # well encoded, nonsense inside
    ],
)
async def test_a_bad_limit_or_cursor_is_a_422_that_names_the_field(client, path, query, field):
    _, token = await register(client)
    response = await client.get(f"{path}?{query}", headers=bearer(token))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith(f"{field}: "), error["message"]
