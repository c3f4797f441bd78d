"""GET/PUT /api/v1/me/preferences and PUT/DELETE /api/v1/events/{id}/mute: the grid with its
defaults and locked cells, partial updates, quiet hours, and every bad input refused whole."""

from __future__ import annotations

from typing import Any

from tests.api import bearer, create_event, register
from webapp.preferences.plan import CHANNELS, DEFAULT_CHANNELS, LOCKED_CHANNELS


async def preferences(client: Any, token: str) -> dict[str, Any]:
    answer = await client.get("/api/v1/me/preferences", headers=bearer(token))
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def put(client: Any, token: str, body: Any) -> Any:
    return await client.put("/api/v1/me/preferences", json=body, headers=bearer(token))


async def test_a_new_user_sees_the_defaults_the_locked_cells_and_no_quiet_hours(client) -> None:
    _, token = await register(client, timezone="Europe/Berlin")
    body = await preferences(client, token)
    assert body["channels"] == {t: {c: c in on for c in CHANNELS} for t, on in DEFAULT_CHANNELS.items()}
    assert body["locked"] == {t: sorted(on) for t, on in LOCKED_CHANNELS.items()}
    assert "email" in body["locked_reasons"]["payment_failed"].lower()
    assert body["quiet_hours"] is None and body["muted_events"] == [] and body["timezone"] == "Europe/Berlin"


async def test_put_changes_the_given_cells_and_quiet_hours_and_answers_the_whole(client) -> None:
    _, token = await register(client)
    answer = await put(
        client,
        token,
        {
            "channels": {"event_updated": {"email": False, "push": True}},
            "quiet_hours": {"start": "22:00", "end": "07:00"},
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["channels"]["event_updated"] == {"browser": True, "push": True, "email": False}
    body = await preferences(client, token)
    assert body["channels"]["event_updated"] == {"browser": True, "push": True, "email": False}
    assert body["channels"]["booking_confirmed"]["email"] is True  # untouched
    assert body["quiet_hours"] == {"start": "22:00", "end": "07:00"}
    # Leaving quiet_hours out keeps them; null clears them; the read-only fields are ignored.
    assert (await put(client, token, {"channels": {}, "locked": {}, "muted_events": []})).status_code == 200
    assert (await preferences(client, token))["quiet_hours"] == {"start": "22:00", "end": "07:00"}
    assert (await put(client, token, {"quiet_hours": None})).json()["quiet_hours"] is None


async def test_the_document_read_can_be_sent_back_unchanged(client) -> None:
    _, token = await register(client)
    body = await preferences(client, token)
    answer = await put(client, token, body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == body


async def test_unknown_types_and_channels_are_refused_by_name_and_nothing_changes(client) -> None:
    _, token = await register(client)
    before = await preferences(client, token)
    for body, field in [
        ({"channels": {"event_updated": {"email": False}, "party_invite": {"email": False}}}, "channels.party_invite"),
        ({"channels": {"event_updated": {"pigeon": True}}}, "channels.event_updated.pigeon"),
        ({"channels": {"event_updated": {"email": "no"}}}, "channels.event_updated.email"),
        (
            {"channels": {"event_updated": {"email": False}}, "quiet_hours": {"start": "22:00", "end": "22:00"}},
            "quiet_hours.end",
        ),
        ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "quiet_hours.start"),
        ({"quiet_hours": {"start": "22:00"}}, "quiet_hours.end"),
        ({"channels": ["email"]}, "channels"),
    ]:
        answer = await put(client, token, body)
        assert answer.status_code == 422, (body, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "validation_error" and field in error["fields"], (body, error)
    assert await preferences(client, token) == before


async def test_a_locked_cell_cannot_be_switched_off_and_says_why(client) -> None:
    _, token = await register(client)
    answer = await put(client, token, {"channels": {"payment_failed": {"email": False, "push": False}}})
    assert answer.status_code == 422
    message = answer.json()["error"]["fields"]["channels.payment_failed.email"]
    assert "cannot be switched off" in message and "payment" in message.lower()
    assert (await preferences(client, token))["channels"]["payment_failed"]["push"] is True
    # Setting it on (what it is) is fine.
    assert (await put(client, token, {"channels": {"payment_failed": {"email": True}}})).status_code == 200


async def test_a_body_that_is_not_json_is_a_400(client) -> None:
    _, token = await register(client)
    answer = await client.put(
        "/api/v1/me/preferences", content=b"{not json", headers={**bearer(token), "content-type": "application/json"}
    )
    assert answer.status_code == 400


async def test_preferences_and_mutes_need_a_signed_in_user(client) -> None:
    assert (await client.get("/api/v1/me/preferences")).status_code == 401
    assert (await client.put("/api/v1/me/preferences", json={})).status_code == 401
    assert (await client.put("/api/v1/events/1/mute")).status_code == 401
    assert (await client.delete("/api/v1/events/1/mute")).status_code == 401


async def test_muting_an_event_lists_it_for_that_user_only_and_unmuting_undoes_it(client) -> None:
    _, organizer = await register(client)
    _, alice = await register(client)
    _, bob = await register(client)
    event = await create_event(client, organizer, title="Harbour Lights")
    answer = await client.put(f"/api/v1/events/{event['id']}/mute", headers=bearer(alice))
    assert answer.status_code == 200 and answer.json() == {"event_id": event["id"], "muted": True}
    # Twice is the same as once.
    assert (await client.put(f"/api/v1/events/{event['id']}/mute", headers=bearer(alice))).status_code == 200
    muted = (await preferences(client, alice))["muted_events"]
    assert [(m["id"], m["title"]) for m in muted] == [(event["id"], "Harbour Lights")]
    assert (await preferences(client, bob))["muted_events"] == []
    # Bob unmuting it changes nothing of Alice's.
    assert (await client.delete(f"/api/v1/events/{event['id']}/mute", headers=bearer(bob))).status_code == 200
    assert len((await preferences(client, alice))["muted_events"]) == 1
    answer = await client.delete(f"/api/v1/events/{event['id']}/mute", headers=bearer(alice))
    assert answer.status_code == 200 and answer.json() == {"event_id": event["id"], "muted": False}
    assert (await preferences(client, alice))["muted_events"] == []


async def test_muting_an_event_that_does_not_exist_is_a_404_and_a_bad_id_a_422(client) -> None:
    _, token = await register(client)
    for method in ("put", "delete"):
        answer = await getattr(client, method)("/api/v1/events/999999/mute", headers=bearer(token))
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
        assert (await getattr(client, method)("/api/v1/events/0/mute", headers=bearer(token))).status_code == 422
        assert (
            await getattr(client, method)("/api/v1/events/99999999999/mute", headers=bearer(token))
        ).status_code == 422
    assert (await preferences(client, token))["muted_events"] == []
