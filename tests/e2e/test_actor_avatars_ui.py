"""The initials avatar of the person who caused a notification: in the dropdown, on the inbox page
and in the toast of a live one, at both viewports, hidden from screen readers (the name is in the
text) and passing axe."""

from __future__ import annotations

import pytest
from playwright.async_api import expect
from sqlalchemy.ext.asyncio import AsyncSession

from tests.e2e.conftest import ContextFactory, Screenshots
from tests.e2e.layout_helpers import VIEWPORTS, box, viewport_box, viewport_options
from tests.e2e.notifications_helpers import (
    PANEL,
    ApiClient,
    make_admin,
    open_app,
    open_dropdown,
    seed_notifications,
    sign_in,
)
from tests.e2e.test_notifications_ui import axe_violations, serious


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
async def test_items_caused_by_a_person_show_their_initials_in_the_dropdown_inbox_and_toast(
    viewport: str, new_context: ContextFactory, shot: Screenshots, base_url: str, session: AsyncSession
) -> None:
    client = ApiClient(base_url)
    ada = await client.register(f"ada-{viewport}@example.com", "Ada Lovelace")
    bob = await client.register(f"bob-{viewport}@example.com", "Bob Member")
    await make_admin(session, ada)
    await seed_notifications(
        session,
        bob,
        {"type": "group_invitation", "title": "Join Chess Club", "actor_id": ada.id},
        {"type": "event_reminder", "title": "Harbour Lights is tomorrow"},
    )
    # axe is added as a script tag, which the Content-Security-Policy refuses (its compliance is
    # proven in test_security_headers_ui.py).
    context = await new_context(**viewport_options(viewport, bypass_csp=True))
    await sign_in(context, base_url, bob)
    page = await open_app(context, stream=True)

    await client.announce(ada, "Doors open at 7")  # to everyone, live through the stream
    toast = page.locator(".toast", has_text="Doors open at 7")
    await expect(toast.locator(".toast-avatar")).to_have_text("AL")
    await expect(toast.locator(".toast-avatar")).to_have_attribute("aria-hidden", "true")
    await expect(toast.locator(".toast-kind")).to_contain_text("Ada Lovelace")
    await shot(page, f"{viewport}-toast-with-avatar")

    panel = await open_dropdown(page)
    avatars = panel.locator(".notif-avatar")
    await expect(avatars).to_have_count(2)  # the announcement and the invitation; not the reminder
    for i in range(2):
        await expect(avatars.nth(i)).to_have_text("AL")
        await expect(avatars.nth(i)).to_have_attribute("aria-hidden", "true")
        assert (await box(avatars.nth(i))).inside(await viewport_box(page))
    await expect(panel.locator(".notif-actor").first).to_have_text("Ada Lovelace")
    await expect(panel.locator(".notif-icon")).to_have_count(1)
    # One person, one colour, wherever they appear.
    classes = {await avatars.nth(i).get_attribute("class") for i in range(2)}
    assert classes == {f"notif-avatar avatar-{ada.id % 12}"}
    # The link's accessible name says who, in words.
    await expect(panel.get_by_role("link", name="Ada Lovelace").first).to_be_visible()
    await shot(page, f"{viewport}-dropdown-with-avatars")
    problems = serious(await axe_violations(page, PANEL), f"dropdown ({viewport})")

    await page.goto("/notifications")
    inbox_avatars = page.locator("#inbox-list .notif-avatar")
    await expect(inbox_avatars).to_have_count(2)
    await expect(inbox_avatars.first).to_have_text("AL")
    await shot(page, f"{viewport}-inbox-with-avatars")
    problems += serious(await axe_violations(page, "document"), f"inbox ({viewport})")
    await page.emulate_media(color_scheme="dark")
    # Colours ease into the dark scheme: axe reads them once the transitions have ended.
    await page.wait_for_function("document.getAnimations().every(a => a.playState !== 'running')")
    problems += serious(await axe_violations(page, "document"), f"inbox, dark ({viewport})")
    await shot(page, f"{viewport}-inbox-with-avatars-dark")
    assert not problems, problems
