from __future__ import annotations

from tests.api import bearer, book, create_event, inbox, register


async def create_group(client, token: str, name: str = "Friends") -> dict:
    response = await client.post("/api/v1/groups", json={"name": name}, headers=bearer(token))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def invite(client, token: str, group_id: int, email: str):
    return await client.post(f"/api/v1/groups/{group_id}/invitations", json={"email": email}, headers=bearer(token))


async def invited(client, token: str, group_id: int, email: str) -> dict:
    response = await invite(client, token, group_id, email)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def answer(client, token: str, invitation_id: int, verb: str):
    return await client.post(f"/api/v1/invitations/{invitation_id}/{verb}", headers=bearer(token))


async def join(client, owner_token: str, group_id: int, user: dict, token: str) -> None:
    invitation = await invited(client, owner_token, group_id, user["email"])
    response = await answer(client, token, invitation["id"], "accept")
    assert response.status_code == 200, response.text


async def my_bookings(client, token: str) -> list[dict]:
    response = await client.get("/api/v1/bookings", headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


# --- groups and invitations --------------------------------------------------------------------


async def test_creating_a_group_is_201_and_the_creator_is_its_owner_and_only_member(client):
    owner, token = await register(client, name="Olive")
    response = await client.post("/api/v1/groups", json={"name": "  Book Club  "}, headers=bearer(token))
    assert response.status_code == 201, response.text
    group = response.json()
    assert isinstance(group["id"], int)
    assert group["name"] == "Book Club"
    assert group["owner_id"] == owner["id"]
    assert group["members"] == [{"id": owner["id"], "name": "Olive"}]


async def test_creating_a_group_without_a_name_is_422_and_anonymously_is_401(client):
    _, token = await register(client)
    blank = await client.post("/api/v1/groups", json={"name": "   "}, headers=bearer(token))
    assert blank.status_code == 422, blank.text
    assert "name" in blank.json()["error"]["fields"]
    anonymous = await client.post("/api/v1/groups", json={"name": "Nope"})
    assert anonymous.status_code == 401


async def test_owner_invites_an_existing_account_by_email(client):
    owner, token = await register(client, name="Olive")
    friend, _ = await register(client, name="Fred", email="fred@example.com")
    group = await create_group(client, token, "Hikers")
    response = await invite(client, token, group["id"], "  FRED@Example.com ")
    assert response.status_code == 201, response.text
    invitation = response.json()
    assert invitation["status"] == "pending"
    assert invitation["group"] == {"id": group["id"], "name": "Hikers"}
    assert invitation["inviter"] == {"id": owner["id"], "name": "Olive"}
    # Only what the owner typed: nothing that tells an address with an account from one without.
    assert invitation["invitee"] == {"email": "fred@example.com"}
    assert friend["email"] == "fred@example.com"


async def test_inviting_an_address_without_an_account_answers_like_one_with_an_account(client):
    _, token = await register(client)
    await register(client, name="Known Person", email="known@example.com")
    group = await create_group(client, token)
    known = await invite(client, token, group["id"], "known@example.com")
    unknown = await invite(client, token, group["id"], "nobody@example.com")
    assert known.status_code == unknown.status_code == 201, (known.text, unknown.text)

    def shape(body: dict) -> dict:
        return {**body, "id": "<id>", "created_at": "<time>", "invitee": {"email": "<email>"}}

    assert shape(known.json()) == shape(unknown.json())
    assert unknown.json()["invitee"] == {"email": "nobody@example.com"}
    again_known = await invite(client, token, group["id"], "known@example.com")
    again_unknown = await invite(client, token, group["id"], "nobody@example.com")
    assert again_known.status_code == again_unknown.status_code == 409
    assert again_known.json() == again_unknown.json()
    page = await client.get(f"/groups/{group['id']}", headers=bearer(token))
    assert "known@example.com" in page.text and "nobody@example.com" in page.text
    assert "Known Person" not in page.text  # the owner's page does not tell them apart either

    malformed = await invite(client, token, group["id"], "not-an-address")
    assert malformed.status_code == 422
    assert malformed.json()["error"]["code"] == "validation_error"


async def test_an_invitation_to_an_address_waits_for_its_sign_up(client):
    owner, token = await register(client, name="Olive")
    group = await create_group(client, token, "Early Birds")
    invited = await invite(client, token, group["id"], "Later@Example.com")
    assert invited.status_code == 201, invited.text
    _, newcomer_token = await register(client, name="Lou Later", email="later@example.com")
    items = (await inbox(client, newcomer_token))["items"]
    assert [n["type"] for n in items] == ["group_invitation"]
    assert items[0]["data"]["invitation_id"] == invited.json()["id"]
    accepted = await client.post(f"/api/v1/invitations/{invited.json()['id']}/accept", headers=bearer(newcomer_token))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"


async def test_inviting_someone_with_a_pending_invitation_is_409(client):
    _, token = await register(client)
    friend, _ = await register(client)
    group = await create_group(client, token)
    await invited(client, token, group["id"], friend["email"])
    again = await invite(client, token, group["id"], friend["email"])
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "already_invited"


async def test_inviting_a_member_is_409(client):
    owner, token = await register(client)
    friend, friend_token = await register(client)
    group = await create_group(client, token)
    await join(client, token, group["id"], friend, friend_token)
    member = await invite(client, token, group["id"], friend["email"])
    assert member.status_code == 409, member.text
    assert member.json()["error"]["code"] == "already_member"
    yourself = await invite(client, token, group["id"], owner["email"])
    assert yourself.status_code == 409
    assert yourself.json()["error"]["code"] == "already_member"


async def test_a_declined_invitation_does_not_block_a_new_one(client):
    _, token = await register(client)
    friend, friend_token = await register(client)
    group = await create_group(client, token)
    first = await invited(client, token, group["id"], friend["email"])
    assert (await answer(client, friend_token, first["id"], "decline")).status_code == 200
    second = await invite(client, token, group["id"], friend["email"])
    assert second.status_code == 201, second.text
    assert second.json()["id"] != first["id"]


async def test_only_the_owner_can_invite_others_get_404(client):
    _, owner_token = await register(client)
    member, member_token = await register(client)
    _, outsider_token = await register(client)
    target, _ = await register(client)
    group = await create_group(client, owner_token)
    await join(client, owner_token, group["id"], member, member_token)
    by_member = await invite(client, member_token, group["id"], target["email"])
    assert by_member.status_code == 404, by_member.text
    assert by_member.json()["error"]["code"] == "not_found"
    by_outsider = await invite(client, outsider_token, group["id"], target["email"])
    assert by_outsider.status_code == 404
    unknown_group = await invite(client, owner_token, 999999, target["email"])
    assert unknown_group.status_code == 404
    # None of those created an invitation: the owner can still invite the target.
    assert (await invite(client, owner_token, group["id"], target["email"])).status_code == 201


async def test_accepting_an_invitation_makes_the_invitee_a_member(client):
    owner, owner_token = await register(client)
    friend, friend_token = await register(client)
    group = await create_group(client, owner_token)
    invitation = await invited(client, owner_token, group["id"], friend["email"])
    response = await answer(client, friend_token, invitation["id"], "accept")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    assert response.json()["group"]["id"] == group["id"]
    # Membership is what lets the friend book for the group.
    event = await create_event(client, owner_token, price_cents=0)
    booking = await book(client, friend_token, event["id"], seats=1, group_id=group["id"])
    assert booking.status_code == 201, booking.text
    assert booking.json()["attendee_ids"] == sorted([owner["id"], friend["id"]])


async def test_declining_an_invitation_is_200_and_does_not_make_a_member(client):
    _, owner_token = await register(client)
    friend, friend_token = await register(client)
    group = await create_group(client, owner_token)
    invitation = await invited(client, owner_token, group["id"], friend["email"])
    response = await answer(client, friend_token, invitation["id"], "decline")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "declined"
    event = await create_event(client, owner_token)
    booking = await book(client, friend_token, event["id"], seats=1, group_id=group["id"])
    assert booking.status_code == 404, booking.text


async def test_answering_an_invitation_twice_is_409(client):
    _, owner_token = await register(client)
    friend, friend_token = await register(client)
    other, other_token = await register(client)
    group = await create_group(client, owner_token)
    accepted = await invited(client, owner_token, group["id"], friend["email"])
    assert (await answer(client, friend_token, accepted["id"], "accept")).status_code == 200
    twice = await answer(client, friend_token, accepted["id"], "accept")
    assert twice.status_code == 409, twice.text
    assert twice.json()["error"]["code"] == "invitation_answered"
    assert (await answer(client, friend_token, accepted["id"], "decline")).status_code == 409
    declined = await invited(client, owner_token, group["id"], other["email"])
    assert (await answer(client, other_token, declined["id"], "decline")).status_code == 200
    assert (await answer(client, other_token, declined["id"], "accept")).status_code == 409


async def test_nobody_but_the_invitee_can_answer_an_invitation(client):
    _, owner_token = await register(client)
    friend, friend_token = await register(client)
    _, stranger_token = await register(client)
    group = await create_group(client, owner_token)
    invitation = await invited(client, owner_token, group["id"], friend["email"])
    for token in (stranger_token, owner_token):
        for verb in ("accept", "decline"):
            response = await answer(client, token, invitation["id"], verb)
            assert response.status_code == 404, (verb, response.text)
            assert response.json()["error"]["code"] == "not_found"
    # Still pending: the invitee can accept it.
    accepted = await answer(client, friend_token, invitation["id"], "accept")
    assert accepted.status_code == 200
    assert accepted.json()["status"] == "accepted"
    assert (await answer(client, friend_token, 999999, "accept")).status_code == 404


# --- group bookings ----------------------------------------------------------------------------


async def test_a_group_booking_books_one_seat_per_member_and_shows_in_every_members_bookings(client):
    owner, owner_token = await register(client)
    ann, ann_token = await register(client)
    ben, ben_token = await register(client)
    pending, pending_token = await register(client)
    _, outsider_token = await register(client)
    group = await create_group(client, owner_token, "Crew")
    await join(client, owner_token, group["id"], ann, ann_token)
    await join(client, owner_token, group["id"], ben, ben_token)
    await invited(client, owner_token, group["id"], pending["email"])  # not accepted: not a member
    _, organizer_token = await register(client)
    event = await create_event(client, organizer_token, capacity=10, price_cents=1500)

    response = await book(client, ann_token, event["id"], seats=1, group_id=group["id"])
    assert response.status_code == 201, response.text
    booking = response.json()
    member_ids = sorted([owner["id"], ann["id"], ben["id"]])
    assert booking["seats"] == 3
    assert sorted(booking["attendee_ids"]) == member_ids
    assert booking["group_id"] == group["id"]
    assert booking["amount_cents"] == 3 * 1500
    assert booking["status"] == "pending"

    seats_left = (await client.get(f"/api/v1/events/{event['id']}")).json()["seats_left"]
    assert seats_left == 7
    for token in (owner_token, ann_token, ben_token):
        assert [b["id"] for b in await my_bookings(client, token)] == [booking["id"]]
    assert await my_bookings(client, pending_token) == []
    assert await my_bookings(client, outsider_token) == []


async def test_a_group_booking_larger_than_the_seats_left_is_409_event_full(client):
    _, owner_token = await register(client)
    friend, friend_token = await register(client)
    group = await create_group(client, owner_token)
    await join(client, owner_token, group["id"], friend, friend_token)
    _, organizer_token = await register(client)
    event = await create_event(client, organizer_token, capacity=1)
    response = await book(client, owner_token, event["id"], seats=1, group_id=group["id"])
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "event_full"
    assert (await client.get(f"/api/v1/events/{event['id']}")).json()["seats_left"] == 1


async def test_a_group_booking_for_a_group_the_user_is_not_in_is_404(client):
    _, owner_token = await register(client)
    _, outsider_token = await register(client)
    group = await create_group(client, owner_token)
    _, organizer_token = await register(client)
    event = await create_event(client, organizer_token, capacity=10)
    response = await book(client, outsider_token, event["id"], seats=1, group_id=group["id"])
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"
    unknown = await book(client, outsider_token, event["id"], seats=1, group_id=999999)
    assert unknown.status_code == 404
    assert (await client.get(f"/api/v1/events/{event['id']}")).json()["seats_left"] == 10
    assert await my_bookings(client, outsider_token) == []
    assert await my_bookings(client, owner_token) == []
