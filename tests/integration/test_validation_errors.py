"""A request that fails validation is a 422 `validation_error` whatever checked it (the body's
types, a query or path parameter, or a service rule), and its message names the field in plain
words. Only a body that is not JSON at all is a 400 `bad_request`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api import bearer, create_event, event_payload, register
from webapp.http import MAX_ROW_ID


async def request(client, token: str, case: str) -> Any:
    """One bad request per case; events are created only when the case needs one."""
    headers = bearer(token)
    if case in ("seats-text", "seats-zero", "body-not-an-object"):
        event = await create_event(client, token, capacity=5)
        body: Any = {"seats": "two"} if case == "seats-text" else {"seats": 0} if case == "seats-zero" else [1]
        return await client.post(f"/api/v1/events/{event['id']}/bookings", json=body, headers=headers)
    if case == "venue-missing":
        payload = event_payload()
        del payload["venue"]
        return await client.post("/api/v1/events", json=payload, headers=headers)
    if case == "capacity-null":
        return await client.post("/api/v1/events", json=event_payload(capacity=None), headers=headers)
    if case == "starts-at-not-a-date":
        return await client.post("/api/v1/events", json=event_payload(starts_at="next tuesday"), headers=headers)
    if case == "id-out-of-range":
        return await client.get(f"/api/v1/events/{MAX_ROW_ID + 1}")
    if case == "query-too-long":
        return await client.get("/api/v1/events?q=" + "x" * 201)
    raise AssertionError(case)


CASES = {
    # case: (field named, words the message must hold)
    "seats-text": ("seats", "must be a whole number"),
    "seats-zero": ("seats", "between 1 and"),
    "body-not-an-object": ("body", "must be a JSON object"),
    "venue-missing": ("venue", "is required"),
    "capacity-null": ("capacity", "must be a whole number"),
    "starts-at-not-a-date": ("starts_at", "must be a date and time"),
    "id-out-of-range": ("event_id", f"must be at most {MAX_ROW_ID}"),
    "query-too-long": ("q", "must be at most 200 characters"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_validation_errors_are_422_and_name_the_field_in_words(client, case):
    field, words = CASES[case]
    _, token = await register(client)
    response = await request(client, token, case)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith(f"{field}: "), error["message"]
    assert words in error["fields"][field], error
    # No parser vocabulary reaches a person.
    assert "`" not in error["message"] and "Expected" not in error["message"], error["message"]


async def test_a_body_that_is_not_json_is_400_bad_request(client):
    _, token = await register(client)
    response = await client.post(
        "/api/v1/events", content=b'{"title": ', headers={**bearer(token), "content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_request"


async def test_a_page_with_an_out_of_range_id_is_the_same_422(client):
    response = await client.get(f"/events/{MAX_ROW_ID + 1}")
    assert response.status_code == 422
