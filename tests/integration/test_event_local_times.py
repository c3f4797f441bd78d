"""Local event times that the clocks skip or pass twice are refused, never shifted silently:
on the organizer's form (create and edit) and on the JSON API (which wants explicit offsets)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from tests.api import bearer, create_event, event_payload, register
from tests.integration.pages import post_form, register_in_browser
from webapp.events.models import Event

ZONE = "Europe/Berlin"
LOCAL = "%Y-%m-%dT%H:%M"


def next_transition(zone: str, forward: bool) -> tuple[datetime, timedelta, timedelta]:
    """The next clock change in `zone` at least a week away (so the event is in the future):
    the UTC instant, the offset before and the offset after."""
    tz = ZoneInfo(zone)
    moment = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=7)
    before = moment.astimezone(tz).utcoffset()
    for _ in range(24 * 400):
        moment += timedelta(hours=1)
        after = moment.astimezone(tz).utcoffset()
        assert before is not None and after is not None
        if after != before and (after > before) == forward:
            return moment, before, after
        before = after
    raise AssertionError(f"no clock change in {zone} within a year")


def skipped_wall_time() -> datetime:
    """A naive local time inside the spring-forward gap (e.g. 02:30 when 02:00 becomes 03:00)."""
    instant, before, _ = next_transition(ZONE, forward=True)
    return (instant + before).replace(tzinfo=None) + timedelta(minutes=30)


def repeated_wall_time() -> tuple[datetime, datetime, datetime]:
    """A naive local time inside the fall-back fold, with its two instants (first, second)."""
    instant, before, after = next_transition(ZONE, forward=False)
    wall = (instant + after).replace(tzinfo=None) + timedelta(minutes=30)
    return wall, (wall - before).replace(tzinfo=UTC), (wall - after).replace(tzinfo=UTC)


def form_for(starts: datetime, ends: datetime, **overrides: str) -> dict[str, str]:
    form = {
        "title": "Night Owls",
        "description": "",
        "venue": "Clock Tower",
        "starts_at": starts.strftime(LOCAL),
        "ends_at": ends.strftime(LOCAL),
        "timezone": ZONE,
        "capacity": "20",
        "price": "5.00",
        "currency": "EUR",
    }
    form.update(overrides)
    return form


async def count_events(session) -> int:
    count = int(await session.scalar(select(func.count(Event.id))) or 0)
    await session.rollback()  # SQLite: a test's open transaction would hold the write lock
    return count


async def stored_events(session) -> list[tuple[int, str, datetime, int]]:
    """(id, title, starts_at, version) of every event, read in a transaction that is then ended."""
    rows = [tuple(row) for row in await session.execute(select(Event.id, Event.title, Event.starts_at, Event.version))]
    await session.rollback()
    return rows  # type: ignore[return-value]


async def organizer_in_browser(client) -> None:
    await register_in_browser(client, "owl@example.com", name="Owl", timezone=ZONE)


# --- the organizer's form ------------------------------------------------------------------------


async def test_form_refuses_a_start_the_clocks_skip_and_creates_nothing(client, session):
    await organizer_in_browser(client)
    wall = skipped_wall_time()
    response = await post_form(client, "/events/new", form_for(wall, wall + timedelta(hours=3)))
    assert response.status_code == 422
    shown = wall.strftime("%Y-%m-%d %H:%M")
    assert f"{shown} does not exist in {ZONE} (clocks go forward)" in response.text
    assert f'value="{wall.strftime(LOCAL)}"' in response.text  # the form keeps what was typed
    assert await count_events(session) == 0


async def test_form_refuses_an_end_the_clocks_skip(client, session):
    await organizer_in_browser(client)
    wall = skipped_wall_time()
    response = await post_form(client, "/events/new", form_for(wall - timedelta(hours=3), wall))
    assert response.status_code == 422
    assert f"{wall.strftime('%Y-%m-%d %H:%M')} does not exist in {ZONE}" in response.text
    assert await count_events(session) == 0


async def test_form_refuses_a_start_that_occurs_twice_and_names_both_offsets(client, session):
    await organizer_in_browser(client)
    wall, first, second = repeated_wall_time()
    response = await post_form(client, "/events/new", form_for(wall, wall + timedelta(hours=3)))
    assert response.status_code == 422
    assert f"{wall.strftime('%Y-%m-%d %H:%M')} occurs twice in {ZONE} (clocks go back)" in response.text
    assert "at UTC+02:00 and again at UTC+01:00" in response.text
    assert await count_events(session) == 0


async def test_form_accepts_the_same_night_outside_the_gap_at_the_local_time_given(client, session):
    await organizer_in_browser(client)
    wall = skipped_wall_time() + timedelta(hours=1)  # 03:30, after the change
    response = await post_form(client, "/events/new", form_for(wall, wall + timedelta(hours=2)))
    assert response.status_code == 302, response.text
    [(_, _, starts_at, _)] = await stored_events(session)
    assert starts_at.astimezone(ZoneInfo(ZONE)).replace(tzinfo=None) == wall


async def test_edit_form_refuses_a_skipped_time_and_leaves_the_event_unchanged(client, session):
    await organizer_in_browser(client)
    wall = skipped_wall_time()
    created = await post_form(
        client, "/events/new", form_for(wall + timedelta(days=1), wall + timedelta(days=1, hours=2))
    )
    assert created.status_code == 302, created.text
    [before] = await stored_events(session)
    event_id = before[0]

    response = await post_form(
        client, f"/events/{event_id}/edit", form_for(wall, wall + timedelta(hours=2), title="Moved")
    )
    assert response.status_code == 422
    assert f"{wall.strftime('%Y-%m-%d %H:%M')} does not exist in {ZONE}" in response.text
    assert await stored_events(session) == [before]


async def test_edit_form_refuses_moving_to_a_repeated_time(client, session):
    await organizer_in_browser(client)
    wall, _, _ = repeated_wall_time()
    start = wall - timedelta(days=1)
    created = await post_form(client, "/events/new", form_for(start, start + timedelta(hours=2)))
    assert created.status_code == 302, created.text
    [before] = await stored_events(session)
    event_id = before[0]

    response = await post_form(client, f"/events/{event_id}/edit", form_for(wall, wall + timedelta(hours=4)))
    assert response.status_code == 422
    assert "occurs twice" in response.text
    assert await stored_events(session) == [before]


async def test_edit_form_keeps_a_repeated_time_set_explicitly_through_the_api(client, session):
    """An event at the second 02:30 of the fall-back night (given with its offset through the
    API) shows 02:30 on the edit form; saving the form with another title keeps that instant."""
    await organizer_in_browser(client)
    csrf = {"x-csrftoken": client.cookies["tidings_csrf"]}
    wall, _, second = repeated_wall_time()
    payload = event_payload(
        starts_at=second.isoformat(), ends_at=(second + timedelta(hours=2)).isoformat(), timezone=ZONE
    )
    response = await client.post("/api/v1/events", json=payload, headers=csrf)
    assert response.status_code == 201, response.text
    event_id = response.json()["id"]
    edit = await client.get(f"/events/{event_id}/edit")
    assert f'value="{wall.strftime(LOCAL)}"' in edit.text

    ends = (second + timedelta(hours=2)).astimezone(ZoneInfo(ZONE)).replace(tzinfo=None)
    saved = await post_form(client, f"/events/{event_id}/edit", form_for(wall, ends, title="Renamed"))
    assert saved.status_code == 302, saved.text
    [(_, title, starts_at, _)] = await stored_events(session)
    assert (title, starts_at) == ("Renamed", second)


# --- the JSON API --------------------------------------------------------------------------------


async def test_api_refuses_a_local_time_without_offset_even_inside_a_gap_and_creates_nothing(client):
    _, token = await register(client)
    wall = skipped_wall_time()
    payload = event_payload(starts_at=wall.isoformat(), ends_at=(wall + timedelta(hours=2)).isoformat(), timezone=ZONE)
    response = await client.post("/api/v1/events", json=payload, headers=bearer(token))
    assert response.status_code == 422, response.text
    fields = response.json()["error"]["fields"]
    assert "UTC offset" in fields["starts_at"] and "UTC offset" in fields["ends_at"]
    assert (await client.get("/api/v1/events")).json()["items"] == []


async def test_api_patch_refuses_a_local_time_without_offset_and_changes_nothing(client):
    _, token = await register(client)
    event = await create_event(client, token, timezone=ZONE)
    wall, _, _ = repeated_wall_time()
    response = await client.patch(
        f"/api/v1/events/{event['id']}", json={"starts_at": wall.isoformat()}, headers=bearer(token)
    )
    assert response.status_code == 422, response.text
    assert "starts_at" in response.json()["error"]["fields"]
    assert (await client.get(f"/api/v1/events/{event['id']}")).json() == event


async def test_api_takes_either_occurrence_of_a_repeated_time_when_the_offset_says_which(client):
    _, token = await register(client)
    wall, first, second = repeated_wall_time()
    for instant in (first, second):
        local = instant.astimezone(ZoneInfo(ZONE))
        assert local.replace(tzinfo=None) == wall
        event = await create_event(
            client,
            token,
            starts_at=local.isoformat(),  # e.g. 2027-10-31T02:30:00+02:00, then +01:00
            ends_at=(local + timedelta(hours=5)).isoformat(),
            timezone=ZONE,
        )
        assert datetime.fromisoformat(event["starts_at"]) == instant
