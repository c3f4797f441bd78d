"""A group invitation answered from the dropdown, on a phone and a desktop: the item updates in
place, the other tab follows, and the group's owner is told live who accepted (the real jobs send
the invitation and the answer; the real page answers it)."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import expect

from tests.e2e.conftest import ContextFactory, Screenshots
from tests.e2e.layout_helpers import VIEWPORT_NAMES, viewport_options
from tests.e2e.notifications_helpers import ApiClient, expect_badge, open_app, open_dropdown, sign_in

UNREAD = re.compile(r"\bis-unread\b")


@pytest.mark.parametrize("viewport", VIEWPORT_NAMES)
async def test_accepting_an_invitation_from_the_dropdown_updates_in_place_the_other_tab_and_the_owner(
    viewport: str, new_context: ContextFactory, shot: Screenshots, base_url: str
) -> None:
    client = ApiClient(base_url)
    owner = await client.register(f"owner-inv-{viewport}@example.com", "Olga Owner")
    guest = await client.register(f"guest-inv-{viewport}@example.com", "Gus Guest")
    owner_context = await new_context(**viewport_options(viewport))
    await sign_in(owner_context, base_url, owner)
    owner_page = await open_app(owner_context, stream=True)
    context = await new_context(**viewport_options(viewport))
    await sign_in(context, base_url, guest)
    tab1 = await open_app(context, stream=True)
    tab2 = await open_app(context, "/notifications")
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {owner.token}"}) as http:
        group = (await http.post("/api/v1/groups", json={"name": "Board Games"})).json()
        invited = await http.post(f"/api/v1/groups/{group['id']}/invitations", json={"email": guest.email})
        assert invited.status_code == 201
    await expect_badge(tab1, 1)
    await expect_badge(tab2, 1)
    other_copy = tab2.locator("#inbox-list .notif-group_invitation")
    await expect(other_copy.locator(".notif-actions")).to_be_visible()

    panel = await open_dropdown(tab1)
    invitation = panel.locator(".notif-group_invitation")
    await expect(invitation).to_contain_text("Olga Owner invited you to “Board Games”")
    await shot(tab1, "invitation-in-the-dropdown")
    await invitation.get_by_role("button", name="Accept").click()
    await expect(invitation.locator(".status-accepted")).to_have_text("accepted")
    await expect(invitation).not_to_have_class(UNREAD)
    await expect_badge(tab1, 0)
    await shot(tab1, "invitation-accepted-in-place")
    # The other tab: read, and no answer buttons left to press.
    await expect_badge(tab2, 0, within_ms=1_000)
    await expect(other_copy).not_to_have_class(UNREAD, timeout=1_000)
    await expect(other_copy.locator(".notif-actions")).to_be_hidden()
    group_page = await tab2.goto(f"/groups/{group['id']}")
    assert group_page is not None and group_page.status == 200
    await expect(tab2.locator("main")).to_contain_text("Gus Guest")

    # The owner's open page hears the answer, with the guest's initials.
    await expect_badge(owner_page, 1)
    owner_panel = await open_dropdown(owner_page)
    answered = owner_panel.locator(".notif-invitation_answered")
    await expect(answered).to_contain_text("Gus Guest accepted your invitation to “Board Games”")
    await expect(answered).to_contain_text("2 members now.")
    await expect(answered.locator(".notif-avatar")).to_have_text("GG")
    await shot(owner_page, "owner-told-of-the-answer")
