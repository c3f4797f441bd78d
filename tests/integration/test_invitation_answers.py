"""An invitation is answered once: a second answer, one after the other or at the same moment from
two tabs, is a clear 409 on the API, the page and the notification dropdown; never a 500."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import httpx
import pytest
from sqlalchemy import func, select

from tests.api import bearer, inbox, register
from tests.integration.pages import register_in_browser
from webapp.groups.models import GroupMember, Invitation

ROUNDS = 6


async def group_with_invitation(client, invitee_email: str, owner_token: str = "") -> tuple[dict, dict]:
    if not owner_token:
        _, owner_token = await register(client)
    headers = bearer(owner_token)
    group = (await client.post("/api/v1/groups", json={"name": "Board games"}, headers=headers)).json()
    response = await client.post(
        f"/api/v1/groups/{group['id']}/invitations", json={"email": invitee_email}, headers=headers
    )
    assert response.status_code == 201, response.text
    return group, response.json()


async def members_and_status(session, invitation_id: int) -> tuple[int, str]:
    invitation = await session.get(Invitation, invitation_id, populate_existing=True)
    members = await session.scalar(
        select(func.count()).select_from(GroupMember).where(GroupMember.group_id == invitation.group_id)
    )
    await session.commit()  # end the read: on SQLite it holds the write lock
    return int(members or 0), invitation.status


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [("accept", "accept", "accepted"), ("decline", "decline", "declined"), ("accept", "decline", "accepted")],
)
async def test_answering_an_invitation_twice_through_the_api_is_409(client, session, first, second, expected):
    invitee, token = await register(client)
    _, invitation = await group_with_invitation(client, invitee["email"])
    once = await client.post(f"/api/v1/invitations/{invitation['id']}/{first}", headers=bearer(token))
    assert once.status_code == 200, once.text
    again = await client.post(f"/api/v1/invitations/{invitation['id']}/{second}", headers=bearer(token))
    assert again.status_code == 409, again.text
    assert again.json()["error"] == {
        "code": "invitation_answered",
        "message": f"This invitation was already {expected}.",
    }
    assert await members_and_status(session, invitation["id"]) == (2 if expected == "accepted" else 1, expected)


async def test_answering_an_invitation_twice_on_the_page_is_a_friendly_409(client):
    _, owner_token = await register(client)  # before signing in: the API refuses cookie sessions without CSRF
    await register_in_browser(client, "twice@example.com")
    _, invitation = await group_with_invitation(client, "twice@example.com", owner_token)
    csrf = {"x-csrftoken": client.cookies["tidings_csrf"]}
    once = await client.post(f"/invitations/{invitation['id']}/accept", headers=csrf)
    assert once.status_code == 302
    again = await client.post(f"/invitations/{invitation['id']}/decline", headers=csrf)
    assert again.status_code == 409
    assert "This invitation was already accepted." in again.text and "Traceback" not in again.text

    # From the groups page (htmx): the card shows what the invitation became, and a toast says why.
    fragment = await client.post(f"/invitations/{invitation['id']}/accept", headers={**csrf, "HX-Request": "true"})
    assert fragment.status_code == 409
    assert "<html" not in fragment.text and f'id="invitation-{invitation["id"]}"' in fragment.text
    assert "accepted" in fragment.text and "/accept" not in fragment.text
    toast = json.loads(fragment.headers["HX-Trigger"])
    assert toast["tidings:error"]["message"] == "This invitation was already accepted."


async def test_answering_twice_from_the_notification_dropdown_shows_the_answer_and_a_409(client):
    _, owner_token = await register(client)
    await register_in_browser(client, "dropdown@example.com")
    _, invitation = await group_with_invitation(client, "dropdown@example.com", owner_token)
    notification = (await inbox(client))["items"][0]
    assert notification["type"] == "group_invitation"
    headers = {"x-csrftoken": client.cookies["tidings_csrf"], "HX-Request": "true"}
    form = {"notification_id": str(notification["id"])}
    path = f"/invitations/{invitation['id']}"
    first = await client.post(f"{path}/decline", data=form, headers=headers)
    assert first.status_code == 200, first.text
    # A second tab still shows the buttons and answers again.
    second = await client.post(f"{path}/accept", data=form, headers=headers)
    assert second.status_code == 409
    assert f'data-notification-id="{notification["id"]}"' in second.text
    assert "declined" in second.text and "/accept" not in second.text
    triggers = json.loads(second.headers["HX-Trigger"])
    assert triggers["tidings:error"]["message"] == "This invitation was already declined."


@pytest.mark.parametrize(("first", "second"), [("accept", "accept"), ("decline", "decline"), ("accept", "decline")])
async def test_two_tabs_answering_at_once_get_one_200_and_one_409(app, in_process_server, session, first, second):
    """Two separate clients (two tabs) answer the same invitation at the same moment, several times."""
    async with (
        httpx.AsyncClient(base_url=in_process_server, timeout=30) as tab1,
        httpx.AsyncClient(base_url=in_process_server, timeout=30) as tab2,
    ):
        invitee, token = await register(tab1)
        for _ in range(ROUNDS):
            _, invitation = await group_with_invitation(tab1, invitee["email"])
            path = f"/api/v1/invitations/{invitation['id']}"
            answers = await asyncio.gather(
                tab1.post(f"{path}/{first}", headers=bearer(token)),
                tab2.post(f"{path}/{second}", headers=bearer(token)),
            )
            statuses = Counter(r.status_code for r in answers)
            assert statuses == {200: 1, 409: 1}, [r.text for r in answers]
            winner = next(r.json() for r in answers if r.status_code == 200)
            loser = next(r.json() for r in answers if r.status_code == 409)
            assert loser["error"]["code"] == "invitation_answered"
            assert loser["error"]["message"] == f"This invitation was already {winner['status']}."
            members, status = await members_and_status(session, invitation["id"])
            assert status == winner["status"]
            assert members == (2 if status == "accepted" else 1)
