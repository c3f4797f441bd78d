"""Time zone fields: a searchable list of canonical zones, the browser's zone where none was chosen
(filled in by forms.js, see tests/e2e/test_timezone_fields_ui.py), and the server's own check."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import func, select

from tests.api import bearer, create_event, register
from tests.integration.pages import post_form, register_in_browser
from tests.integration.test_event_local_times import form_for
from webapp.auth.models import User
from webapp.events.models import Event
from webapp.timeutil import common_timezones


def zone_input(page: str) -> str:
    [tag] = re.findall(r'<input id="f-timezone"[^>]*>', page, re.S)
    return tag


def offered(page: str) -> list[str]:
    [listing] = re.findall(r'<datalist id="zones-timezone">(.*?)</datalist>', page, re.S)
    return re.findall(r'<option value="([^"]+)">', listing)


def test_the_offered_zones_are_the_canonical_ones_of_zone_tab_without_the_compatibility_links():
    zones = common_timezones()
    assert {"Europe/Berlin", "America/New_York", "Asia/Kolkata", "Europe/Oslo", "UTC"} <= set(zones)
    assert not {"US/Eastern", "Asia/Calcutta", "GB", "Etc/GMT+5", "Europe/Kiev", "EST"} & set(zones)
    assert 300 < len(zones) < 450  # not the ~600 names zoneinfo knows


async def test_register_and_new_event_forms_ask_for_the_browser_zone_and_offer_a_searchable_list(client):
    page = (await client.get("/register")).text
    tag = zone_input(page)
    assert 'list="zones-timezone"' in tag and 'data-browser-zone="default"' in tag and 'value="UTC"' in tag
    assert offered(page) == common_timezones()
    await register_in_browser(client, "zones@example.com")
    page = (await client.get("/events/new")).text
    assert 'data-browser-zone="default"' in zone_input(page)
    assert offered(page) == common_timezones()


async def test_profile_and_event_edit_keep_the_chosen_zone(client):
    _, token = await register(client, timezone="Asia/Tokyo")
    page = (await client.get("/profile", headers=bearer(token))).text
    tag = zone_input(page)
    assert 'value="Asia/Tokyo"' in tag and 'data-browser-zone="suggest"' in tag  # offered, never put in
    event = await create_event(client, token, timezone="America/New_York")
    tag = zone_input((await client.get(f"/events/{event['id']}/edit", headers=bearer(token))).text)
    assert 'value="America/New_York"' in tag and "data-browser-zone" not in tag


async def test_a_zone_that_does_not_exist_is_refused_on_every_form_and_changes_nothing(client, session):
    refused = await post_form(
        client,
        "/register",
        {"email": "mars@example.com", "password": "correct horse battery", "name": "M", "timezone": "Mars/Olympus"},
    )
    assert refused.status_code == 422
    assert "Choose a time zone" in refused.text
    assert await session.scalar(select(func.count(User.id)).where(User.email == "mars@example.com")) == 0
    await session.rollback()  # no read left open beside the requests' writes

    await register_in_browser(client, "earth@example.com", timezone="Europe/Berlin")
    refused = await post_form(client, "/profile", {"name": "Earthling", "timezone": "Europe/Atlantis"})
    assert refused.status_code == 422 and 'aria-invalid="true"' in zone_input(refused.text)
    assert (await session.scalar(select(User.timezone).where(User.email == "earth@example.com"))) == "Europe/Berlin"
    await session.rollback()

    wall = datetime.now().replace(second=0, microsecond=0) + timedelta(days=30)
    refused = await post_form(client, "/events/new", form_for(wall, wall + timedelta(hours=2), timezone="Nowhere"))
    assert refused.status_code == 422 and "IANA time zone" in refused.text
    assert await session.scalar(select(func.count(Event.id))) == 0
    await session.rollback()

    # An old alias is not offered but is still a valid zone; spaces typed around a zone are dropped.
    accepted = await post_form(client, "/profile", {"name": "Earthling", "timezone": "Asia/Calcutta"})
    assert accepted.status_code == 200
    accepted = await post_form(client, "/profile", {"name": "Earthling", "timezone": " Europe/Paris "})
    assert accepted.status_code == 200
    assert (await session.scalar(select(User.timezone).where(User.email == "earth@example.com"))) == "Europe/Paris"
    await session.rollback()
