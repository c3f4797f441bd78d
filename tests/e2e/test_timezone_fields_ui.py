"""Time zone fields in a real browser, at both viewports: the browser's zone where none was chosen
(register, a new event), offered beside the chosen one (profile), kept on an edit, a searchable
list of canonical zones, and the server's refusal of a zone that does not exist."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.conftest import DEFAULT_PASSWORD
from tests.e2e.conftest import ContextFactory, Screenshots
from tests.e2e.layout_helpers import VIEWPORTS, viewport_options
from tests.e2e.notifications_helpers import ApiClient, sign_in
from tests.e2e.test_notifications_ui import axe_violations, serious

BROWSER_ZONE = "Pacific/Auckland"
ZONE = "#f-timezone"


async def search_list(page: Page, typed: str) -> list[str]:
    """Types part of a name into the field and answers the list's entries the browser offers
    for it (Chromium's datalist matches substrings; its pop-up is not part of the page, so the
    entries are read through the field's own `list`, which proves the field is tied to it)."""
    field = page.locator(ZONE)
    await field.fill("")
    await field.press_sequentially(typed)
    return await field.evaluate(  # type: ignore[no-any-return]
        """input => [...input.list.options].map(o => o.value)
            .filter(v => v.toLowerCase().includes(input.value.toLowerCase()))"""
    )


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
async def test_register_and_new_event_start_from_the_browser_zone_and_the_list_is_searchable(
    viewport: str, new_context: ContextFactory, shot: Screenshots
) -> None:
    # bypass_csp: axe is added as a script tag (CSP compliance: test_security_headers_ui.py).
    context = await new_context(**viewport_options(viewport, timezone_id=BROWSER_ZONE, bypass_csp=True))
    page = await context.new_page()
    await page.goto("/register")
    await expect(page.locator(ZONE)).to_have_value(BROWSER_ZONE)
    # The list holds canonical names only, and narrows as one types.
    options = page.locator("#zones-timezone option")
    assert 300 < await options.count() < 450
    await expect(page.locator('#zones-timezone option[value="Asia/Calcutta"]')).to_have_count(0)
    await expect(page.locator('#zones-timezone option[value="Asia/Kolkata"]')).to_have_count(1)
    await shot(page, f"{viewport}-register-browser-zone")
    problems = serious(await axe_violations(page, "document"), f"register ({viewport})")
    await page.fill("#f-email", f"zones-{viewport}@example.com")
    await page.fill("#f-password", DEFAULT_PASSWORD)
    await page.fill("#f-name", "Zoe Zones")
    await page.get_by_role("button", name="Create account").click()
    await page.wait_for_url("**/")

    await page.goto("/profile")
    await expect(page.locator(ZONE)).to_have_value(BROWSER_ZONE)  # what they registered with
    await expect(page.locator(".browser-zone")).to_have_count(0)  # nothing else to offer

    await page.goto("/events/new")
    await expect(page.locator(ZONE)).to_have_value(BROWSER_ZONE)
    assert await search_list(page, "Berl") == ["Europe/Berlin"]
    assert await search_list(page, "york") == ["America/New_York"]
    assert "America/Argentina/Buenos_Aires" in await search_list(page, "argentina")
    await page.locator(ZONE).fill("Europe/Berlin")
    await shot(page, f"{viewport}-new-event-zone-searched")
    problems += serious(await axe_violations(page, "document"), f"new event ({viewport})")
    assert not problems, problems


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
async def test_profile_keeps_the_chosen_zone_offers_the_browser_one_and_refuses_an_unknown_zone(
    viewport: str, new_context: ContextFactory, shot: Screenshots, base_url: str
) -> None:
    person = await ApiClient(base_url).register(f"tokyo-{viewport}@example.com", "Toru Tokyo", timezone="Asia/Tokyo")
    context = await new_context(**viewport_options(viewport, timezone_id=BROWSER_ZONE))
    await sign_in(context, base_url, person)
    page = await context.new_page()
    await page.goto("/profile")
    await expect(page.locator(ZONE)).to_have_value("Asia/Tokyo")  # their choice, not replaced
    offer = page.get_by_role("button", name=f"Use this device's time zone ({BROWSER_ZONE})")
    await expect(offer).to_be_visible()
    await shot(page, f"{viewport}-profile-offers-browser-zone")

    await page.locator(ZONE).fill("Mars/Olympus")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator(ZONE)).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#e-timezone")).to_contain_text("Choose a time zone")
    await shot(page, f"{viewport}-profile-unknown-zone-refused")
    await page.goto("/profile")
    await expect(page.locator(ZONE)).to_have_value("Asia/Tokyo")  # nothing changed

    await page.get_by_role("button", name=f"Use this device's time zone ({BROWSER_ZONE})").click()
    await expect(page.locator(ZONE)).to_have_value(BROWSER_ZONE)
    await page.get_by_role("button", name="Save").click()
    await page.goto("/profile")
    await expect(page.locator(ZONE)).to_have_value(BROWSER_ZONE)
