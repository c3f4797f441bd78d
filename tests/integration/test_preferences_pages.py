"""The preferences page (grid, quiet hours, muted events), muting from a notification and the
event page, and one-click unsubscribe from an email link (RFC 8058)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from tests.api import bearer, create_event, register
from tests.conftest import TEST_SECRET
from tests.integration.pages import csrf_token, post_form, register_in_browser
from webapp.auth.models import User
from webapp.signed_links import open_link_token, sign_link, unsubscribe_token


async def signed_in(client: Any, email: str = "prefs@example.com", timezone: str = "Europe/Berlin") -> int:
    await register_in_browser(client, email, name="Pref Person", timezone=timezone)
    return (await client.get("/api/v1/me")).json()["id"]  # type: ignore[no-any-return]


async def grid(client: Any) -> dict[str, dict[str, bool]]:
    return (await client.get("/api/v1/me/preferences")).json()["channels"]  # type: ignore[no-any-return]


async def test_the_page_needs_a_user(client) -> None:
    answer = await client.get("/preferences")
    assert answer.status_code in (302, 303) and answer.headers["location"].startswith("/login")


async def test_the_page_shows_the_grid_the_locked_cells_with_their_reason_and_the_zone(client) -> None:
    await signed_in(client)
    page = await client.get("/preferences")
    assert page.status_code == 200
    text = page.text
    assert 'value="event_updated.email" data-cell="event_updated.email"\n                 checked' in text
    locked = text.split('data-cell="payment_failed.email"')[1].split(">")[0]
    assert "checked" in locked and "disabled" in locked and 'aria-describedby="why-payment_failed"' in locked
    assert "A failed payment can cost you your seat" in text
    assert "Europe/Berlin" in text and 'type="time"' in text
    assert "_push_devices.html" not in text  # the include is quiet while the fragment is missing


async def test_saving_the_grid_switches_unticked_cells_off_and_keeps_locked_ones(client) -> None:
    await signed_in(client)
    cells = [f"{t}.{c}" for t, row in (await grid(client)).items() for c, on in row.items() if on]
    cells.remove("event_updated.email")
    cells.append("event_updated.push")
    cells.remove("payment_failed.email")  # disabled in the page: never sent
    token = await csrf_token(client, "/preferences")
    answer = await client.post("/preferences/channels", data={"cell": cells, "_csrf_token": token})
    assert answer.status_code in (302, 303) and answer.headers["location"] == "/preferences"
    after = await grid(client)
    assert after["event_updated"] == {"browser": True, "push": True, "email": False}
    assert after["payment_failed"]["email"] is True
    page = await client.get("/preferences")
    assert "Your notification channels are saved." in page.text


async def test_a_form_without_its_csrf_token_changes_nothing(client) -> None:
    await signed_in(client)
    before = await grid(client)
    answer = await client.post("/preferences/channels", data={"cell": []})
    assert answer.status_code == 403
    assert await grid(client) == before


async def test_quiet_hours_are_set_refused_when_empty_or_malformed_and_cleared(client) -> None:
    await signed_in(client)
    answer = await post_form(client, "/preferences/quiet-hours", {"start": "22:00", "end": "07:00", "action": "save"})
    assert answer.status_code in (302, 303)
    page = await client.get("/preferences")
    assert "Quiet hours are 22:00–07:00 (Europe/Berlin)" in page.text and "<strong>22:00–07:00</strong>" in page.text
    for start, end, error in [("22:00", "22:00", "must differ from the start"), ("9pm", "07:00", "HH:MM")]:
        refused = await post_form(client, "/preferences/quiet-hours", {"start": start, "end": end, "action": "save"})
        assert refused.status_code == 422 and error in refused.text and 'aria-invalid="true"' in refused.text
    assert (await client.get("/api/v1/me/preferences")).json()["quiet_hours"] == {"start": "22:00", "end": "07:00"}
    cleared = await post_form(client, "/preferences/quiet-hours", {"action": "clear"})
    assert cleared.status_code in (302, 303)
    assert (await client.get("/api/v1/me/preferences")).json()["quiet_hours"] is None


async def test_muting_from_a_notification_then_unmuting_on_the_event_page(client) -> None:
    _, organizer = await register(client)
    event = await create_event(client, organizer, title="Harbour Lights")
    await signed_in(client)
    token = await csrf_token(client, "/preferences")
    muted = await client.post(f"/events/{event['id']}/mute", headers={"hx-request": "true", "x-csrftoken": token})
    assert muted.status_code == 200 and 'role="status"' in muted.text and "Muted" in muted.text
    page = await client.get(f"/events/{event['id']}")
    assert "data-event-muted" in page.text and "Updates muted" in page.text
    listed = await client.get("/preferences")
    assert f'data-muted-event="{event["id"]}"' in listed.text and "Harbour Lights" in listed.text
    unmuted = await post_form(client, f"/events/{event['id']}/unmute", {})
    assert unmuted.status_code in (302, 303) and unmuted.headers["location"] == f"/events/{event['id']}"
    page = await client.get(f"/events/{event['id']}")
    assert "data-event-muted" not in page.text and "are on again" in page.text


async def test_unmuting_from_the_list_and_a_missing_event_is_a_404(client) -> None:
    _, organizer = await register(client)
    event = await create_event(client, organizer, title="Harbour Lights")
    await signed_in(client)
    assert (await post_form(client, f"/events/{event['id']}/mute", {})).status_code in (302, 303)
    answer = await post_form(client, f"/preferences/muted/{event['id']}/unmute", {})
    assert answer.status_code in (302, 303)
    assert (await client.get("/api/v1/me/preferences")).json()["muted_events"] == []
    assert (await post_form(client, "/events/999999/mute", {})).status_code == 404


async def test_a_notification_about_an_event_offers_to_stop_its_updates(client) -> None:
    _, organizer = await register(client)
    user, token = await register(client)
    event = await create_event(client, organizer, title="Harbour Lights", price_cents=0)
    booked = await client.post(f"/api/v1/events/{event['id']}/bookings", json={"seats": 1}, headers=bearer(token))
    assert booked.status_code == 201
    from tests.api import inbox

    body = await inbox(client, token)
    assert body["items"][0]["data"]["event_id"] == event["id"]
    client.cookies.set("tidings_access", token)
    page = await client.get("/notifications")
    assert f'hx-post="/events/{event["id"]}/mute"' in page.text
    assert "Stop updates about this event" in page.text and 'href="/preferences"' in page.text


# ---- one-click unsubscribe ----------------------------------------------------------------


async def user_id(session: Any, email: str) -> int:
    return int(await session.scalar(select(User.id).where(User.email == email)))


async def test_the_link_asks_first_and_a_post_without_session_or_csrf_switches_email_off(client) -> None:
    account, _ = await register(client)
    link = f"/unsubscribe/{unsubscribe_token(account['id'], 'event_updated', TEST_SECRET)}"
    asked = await client.get(link)
    assert asked.status_code == 200 and "Event updated" in asked.text
    assert 'name="List-Unsubscribe" value="One-Click"' in asked.text
    # The GET changed nothing (a mail scanner following the link must not unsubscribe anyone).
    _, token = await register(client)
    client.cookies.clear()
    answer = await client.post(link, data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200 and "no longer get emails" in answer.text
    login = await client.post(
        "/api/v1/auth/login", json={"email": account["email"], "password": "correct horse battery"}
    )
    prefs = (await client.get("/api/v1/me/preferences", headers=bearer(login.json()["token"]))).json()
    assert prefs["channels"]["event_updated"]["email"] is False
    assert prefs["channels"]["booking_confirmed"]["email"] is True


async def test_the_digest_link_switches_off_every_email_it_may_and_says_what_stays_on(client) -> None:
    account, token = await register(client)
    link = f"/unsubscribe/{unsubscribe_token(account['id'], 'digest', TEST_SECRET)}"
    assert (await client.get(link)).status_code == 200
    answer = await client.post(link, data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200
    assert "Payment failed" in answer.text and "Event cancelled" in answer.text and "stay on" in answer.text
    channels = (await client.get("/api/v1/me/preferences", headers=bearer(token))).json()["channels"]
    assert {t for t, row in channels.items() if row["email"]} == {"payment_failed", "event_cancelled"}


async def test_a_locked_type_link_leaves_it_on_and_says_so(client) -> None:
    account, token = await register(client)
    link = f"/unsubscribe/{unsubscribe_token(account['id'], 'payment_failed', TEST_SECRET)}"
    answer = await client.post(link, data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200 and "stay on" in answer.text and "can cost you your seat" in answer.text
    channels = (await client.get("/api/v1/me/preferences", headers=bearer(token))).json()["channels"]
    assert channels["payment_failed"]["email"] is True


async def test_bad_expired_or_foreign_purpose_links_are_a_400_and_change_nothing(client) -> None:
    account, token = await register(client)
    before = (await client.get("/api/v1/me/preferences", headers=bearer(token))).json()
    bad = [
        "not-a-token",
        unsubscribe_token(account["id"], "event_updated", "another-secret-key-with-plenty-of-entropy-0123"),
        sign_link(account["id"], "unsubscribe", "event_updated", TEST_SECRET, timedelta(seconds=-1)),
        open_link_token(account["id"], 1, TEST_SECRET),
        unsubscribe_token(account["id"], "party_invite", TEST_SECRET),
        unsubscribe_token(999999, "event_updated", TEST_SECRET),
    ]
    for token_text in bad:
        for method in ("get", "post"):
            answer = await getattr(client, method)(f"/unsubscribe/{token_text}")
            expected = 200 if (method == "get" and token_text == bad[-1]) else 400
            assert answer.status_code == expected, (token_text, method, answer.status_code)
            if expected == 400:
                assert "not valid or has expired" in answer.text and "Nothing was changed" in answer.text
    assert (await client.get("/api/v1/me/preferences", headers=bearer(token))).json() == before
    assert (await client.get(f"/unsubscribe/{'x' * 5000}")).status_code in (400, 422)
