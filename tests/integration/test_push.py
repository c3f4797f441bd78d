"""Web Push end to end on the server side: subscriptions through the API, and the `send_push` actor
posting to a real push service of the test's own (an HTTP server on 127.0.0.1), whose requests
the test decrypts with the subscription's private keys, as the browser would."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select, update

from jobs import runtime
from jobs.broker import PERMANENT_ERRORS
from jobs.push import PushNotDelivered, send_push
from tests.api import bearer, create_event, eventually, register
from tests.push_service import BrowserKeys, LocalPushService, unb64url
from tidings.app import create_app
from webapp import metrics
from webapp.db import create_sessionmaker
from webapp.notifications.models import Notification
from webapp.notifications.services import NewNotification, NotificationService
from webapp.outbox.models import OutboxMessage
from webapp.outbox.services import enqueue_after_commit, hand_overs_finished
from webapp.push.models import PushDelivery, PushSubscription
from webapp.push.services import MAX_DEVICES_PER_USER
from webapp.push_config import PushHosts
from webapp.settings import Settings
from webapp.signed_links import read_link

run_send_push = inspect.unwrap(send_push.fn)
BASE_URL = "https://tidings.example"


@pytest.fixture
def push_service() -> Iterator[LocalPushService]:
    with LocalPushService() as service:
        yield service


@pytest.fixture
def push_settings(settings: Settings, push_service: LocalPushService) -> Settings:
    """The test's push service is the one push service allowed (named with its scheme: plain HTTP)."""
    return replace(
        settings, push_allowed_hosts=PushHosts.parse(push_service.origin), public_url=BASE_URL, push_timeout_seconds=5.0
    )


@pytest.fixture
async def push_client(push_settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(create_app(push_settings), base_url="http://127.0.0.1:8000") as client:
        client.follow_redirects = False
        yield client


@pytest.fixture
async def push_runtime(push_settings: Settings) -> AsyncIterator[None]:
    runtime.configure(push_settings)
    yield
    await runtime.dispose()
    runtime.configure(None)  # type: ignore[arg-type]


async def subscribe(client: Any, token: str, keys: BrowserKeys, endpoint: str, agent: str = "") -> Any:
    headers = {**bearer(token), **({"user-agent": agent} if agent else {})}
    return await client.post("/api/v1/me/push-subscriptions", json=keys.subscription(endpoint), headers=headers)


async def notify(engine: Any, user_id: int, **fields: Any) -> int:
    fields.setdefault("type", "booking_confirmed")
    fields.setdefault("title", "Booking confirmed: Test Concert")
    async with create_sessionmaker(engine)() as session:
        created = await NotificationService(session).notify(NewNotification(user_id=user_id, **fields))
        await session.commit()
    assert created is not None
    return created.id


async def outbox_row(engine: Any, user_id: int, ids: list[int]) -> int:
    async with create_sessionmaker(engine)() as session:
        row = OutboxMessage(actor_name="send_push", payload={"user_id": user_id, "notification_ids": ids})
        session.add(row)
        await session.commit()
        return row.id


async def completed(engine: Any, outbox_id: int) -> bool:
    async with create_sessionmaker(engine)() as session:
        row = await session.get(OutboxMessage, outbox_id)
        return row is not None and row.completed_at is not None


async def devices(engine: Any) -> dict[int, PushSubscription]:
    async with create_sessionmaker(engine)() as session:
        return {s.id: s for s in await session.scalars(select(PushSubscription))}


# --- the API ----------------------------------------------------------------------------------


async def test_a_browser_subscription_is_stored_listed_and_removed(push_client, push_service, push_settings):
    user, token = await register(push_client)
    key = (await push_client.get("/api/v1/push/key")).json()
    assert key == {"public_key": push_settings.vapid_public_key}
    assert len(unb64url(key["public_key"])) == 65

    chrome = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile"
    created = await subscribe(push_client, token, BrowserKeys(), push_service.endpoint("a"), chrome)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["device"] == "Chrome on Android" and body["endpoint"] == push_service.endpoint("a")
    assert body["last_success_at"] is None

    listed = (await push_client.get("/api/v1/me/push-subscriptions", headers=bearer(token))).json()
    assert [item["id"] for item in listed["items"]] == [body["id"]]

    gone = await push_client.delete(f"/api/v1/me/push-subscriptions/{body['id']}", headers=bearer(token))
    assert gone.status_code == 204
    listed = (await push_client.get("/api/v1/me/push-subscriptions", headers=bearer(token))).json()
    assert listed["items"] == []


async def test_subscribing_an_endpoint_again_updates_it_and_another_account_on_that_browser_takes_it_over(
    push_client, push_service, engine
):
    _, first_token = await register(push_client)
    second, second_token = await register(push_client)
    endpoint = push_service.endpoint("shared")
    first = (await subscribe(push_client, first_token, BrowserKeys(), endpoint)).json()
    renewed = BrowserKeys()
    again = await subscribe(push_client, second_token, renewed, endpoint)
    assert again.status_code == 201 and again.json()["id"] == first["id"]
    stored = await devices(engine)
    assert len(stored) == 1
    (device,) = stored.values()
    assert (device.user_id, device.p256dh, device.auth) == (second["id"], renewed.p256dh, renewed.auth)
    assert (await push_client.get("/api/v1/me/push-subscriptions", headers=bearer(first_token))).json()["items"] == []


async def test_a_device_beyond_the_cap_replaces_the_oldest(push_client, push_service):
    _, token = await register(push_client)
    ids = [
        (await subscribe(push_client, token, BrowserKeys(), push_service.endpoint(f"d{i}"))).json()["id"]
        for i in range(MAX_DEVICES_PER_USER + 1)
    ]
    listed = (await push_client.get("/api/v1/me/push-subscriptions", headers=bearer(token))).json()["items"]
    assert [item["id"] for item in listed] == ids[1:]


def _bad_bodies(endpoint: str) -> list[tuple[dict[str, Any], str]]:
    good = BrowserKeys().subscription(endpoint)
    keys = good["keys"]
    off_curve = "BA" + "A" * 85  # 65 bytes starting 0x04, not a point on P-256
    return [
        ({**good, "keys": {**keys, "p256dh": "not base64url!"}}, "keys.p256dh"),
        ({**good, "keys": {**keys, "p256dh": keys["p256dh"][:40]}}, "keys.p256dh"),
        ({**good, "keys": {**keys, "p256dh": off_curve}}, "keys.p256dh"),
        ({**good, "keys": {**keys, "auth": "c2hvcnQ"}}, "keys.auth"),
        ({**good, "keys": {**keys, "auth": "%%%"}}, "keys.auth"),
        ({**good, "keys": {"p256dh": keys["p256dh"]}}, "keys.auth"),
        ({"endpoint": endpoint}, "keys"),
        ({**good, "endpoint": 42}, "endpoint"),
        # Server-side request forgery: only allow-listed push services, and only as listed.
        ({**good, "endpoint": "http://169.254.169.254/latest/meta-data/"}, "endpoint"),
        ({**good, "endpoint": "https://evil.example/push/1"}, "endpoint"),
        ({**good, "endpoint": endpoint.replace("http://", "https://")}, "endpoint"),
        ({**good, "endpoint": endpoint.replace("127.0.0.1", "localhost")}, "endpoint"),
        ({**good, "endpoint": "file:///etc/passwd"}, "endpoint"),
        ({**good, "endpoint": endpoint + "x" * 1000}, "endpoint"),
    ]


async def test_bad_subscriptions_are_refused_naming_the_field_and_change_nothing(push_client, push_service, engine):
    _, token = await register(push_client)
    for body, field in _bad_bodies(push_service.endpoint("bad")):
        response = await push_client.post("/api/v1/me/push-subscriptions", json=body, headers=bearer(token))
        assert response.status_code == 422, (body, response.text)
        error = response.json()["error"]
        assert error["code"] == "validation_error" and field in error["fields"], (body, error)
    assert await devices(engine) == {}


async def test_the_default_allow_list_refuses_a_local_endpoint(client):
    _, token = await register(client)
    response = await client.post(
        "/api/v1/me/push-subscriptions",
        json=BrowserKeys().subscription("http://127.0.0.1:9/push/x"),
        headers=bearer(token),
    )
    assert response.status_code == 422 and "endpoint" in response.json()["error"]["fields"]


async def test_another_users_subscription_is_not_found_and_stays(push_client, push_service, engine):
    _, owner_token = await register(push_client)
    _, other_token = await register(push_client)
    created = (await subscribe(push_client, owner_token, BrowserKeys(), push_service.endpoint("mine"))).json()
    response = await push_client.delete(f"/api/v1/me/push-subscriptions/{created['id']}", headers=bearer(other_token))
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    page = await push_client.post(f"/push/devices/{created['id']}/remove", headers=bearer(other_token))
    assert page.status_code == 404
    assert list(await devices(engine)) == [created["id"]]


async def test_subscriptions_need_a_session(push_client, push_service):
    assert (await push_client.get("/api/v1/me/push-subscriptions")).status_code == 401
    body = BrowserKeys().subscription(push_service.endpoint("anon"))
    assert (await push_client.post("/api/v1/me/push-subscriptions", json=body)).status_code == 401


async def test_without_vapid_keys_the_key_endpoint_says_push_is_off(settings):
    off = replace(settings, vapid_private_key=None, vapid_public_key=None)
    async with AsyncTestClient(create_app(off), base_url="http://127.0.0.1:8000") as client:
        response = await client.get("/api/v1/push/key")
        assert response.status_code == 404 and response.json()["error"]["code"] == "push_disabled"
        _, token = await register(client)
        page = await client.get("/push/devices", headers=bearer(token))
        assert page.status_code == 200 and "not available on this server" in page.text


async def test_the_service_worker_is_served_from_the_root_uncached_as_javascript(push_client):
    response = await push_client.get("/sw.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cache-control"] == "no-cache"
    assert 'addEventListener("push"' in response.text and "notificationclick" in response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]


# --- the actor --------------------------------------------------------------------------------


def verify_vapid(authorization: str, public_key: str, audience: str, subject: str) -> dict[str, Any]:
    scheme, _, params = authorization.partition(" ")
    assert scheme == "vapid"
    fields = dict(part.split("=", 1) for part in params.split(","))
    assert fields["k"].rstrip("=") == public_key
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(fields["k"]))
    claims = jwt.decode(fields["t"], key=key, algorithms=["ES256"], audience=audience)
    assert claims["sub"] == subject and claims["exp"] > datetime.now(UTC).timestamp()
    return claims


async def test_a_reminder_is_pushed_encrypted_and_signed_to_every_device_with_a_signed_link(
    push_client, push_service, push_settings, push_runtime, engine
):
    user, token = await register(push_client)
    starts = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=30)
    event = await create_event(
        push_client, token, starts_at=starts.isoformat(), ends_at=(starts + timedelta(hours=1)).isoformat()
    )
    phone, laptop = BrowserKeys(), BrowserKeys()
    await subscribe(push_client, token, phone, push_service.endpoint("phone"))
    await subscribe(push_client, token, laptop, push_service.endpoint("laptop"))
    notification_id = await notify(
        engine,
        user["id"],
        type="event_reminder",
        title="Test Concert starts in 30 minutes",
        body="Main Hall, 20:00",
        url=f"/events/{event['id']}",
        subject_kind="event",
        subject_id=event["id"],
        data={"event_id": event["id"]},
    )
    sent_before = metrics.PUSH_SENT._value.get()

    await run_send_push(user_id=user["id"], notification_ids=[notification_id])

    for keys, name in ((phone, "phone"), (laptop, "laptop")):
        (request,) = push_service.to(name)
        payload = keys.decrypt(request.body)
        assert payload["title"] == "Test Concert starts in 30 minutes" and payload["body"] == "Main Hall, 20:00"
        assert payload["url"].startswith(f"{BASE_URL}/n/")
        claims = read_link(payload["url"].removeprefix(f"{BASE_URL}/n/"), "open", push_settings.secret_key)
        assert claims is not None and (claims.user_id, claims.target) == (user["id"], str(notification_id))
        assert payload["tag"] == f"event-{event['id']}" and payload["icon"].startswith(BASE_URL + "/static/icons/")
        assert request.headers["content-encoding"] == "aes128gcm"
        assert request.headers["urgency"] == "high"
        assert request.headers["topic"] == f"event-{event['id']}"
        ttl = int(request.headers["ttl"])
        assert 30 * 60 - 120 < ttl <= 30 * 60  # until the event starts, not a day
        claims = verify_vapid(
            request.headers["authorization"],
            push_settings.vapid_public_key,
            push_service.origin,
            push_settings.vapid_subject,
        )
        assert claims["aud"] == push_service.origin
    assert metrics.PUSH_SENT._value.get() == sent_before + 2
    assert all(d.last_success_at is not None for d in (await devices(engine)).values())


async def test_a_device_whose_push_service_says_gone_is_removed_and_the_others_stay(
    push_client, push_service, push_runtime, engine
):
    user, token = await register(push_client)
    kept = (await subscribe(push_client, token, BrowserKeys(), push_service.endpoint("kept"))).json()
    await subscribe(push_client, token, BrowserKeys(), push_service.endpoint("gone"))
    await subscribe(push_client, token, BrowserKeys(), push_service.endpoint("unknown"))
    push_service.statuses["/push/gone"] = 410
    push_service.statuses["/push/unknown"] = 404
    removed_before = metrics.PUSH_SUBSCRIPTIONS_REMOVED._value.get()
    notification_id = await notify(engine, user["id"])
    outbox_id = await outbox_row(engine, user["id"], [notification_id])

    await run_send_push(user_id=user["id"], notification_ids=[notification_id], outbox_id=outbox_id)

    assert list(await devices(engine)) == [kept["id"]]
    assert metrics.PUSH_SUBSCRIPTIONS_REMOVED._value.get() == removed_before + 2
    assert await completed(engine, outbox_id)


async def test_a_failing_push_service_is_retried_without_a_second_copy_to_the_devices_that_got_it(
    push_client, push_service, push_runtime, engine
):
    user, token = await register(push_client)
    good_keys, flaky_keys = BrowserKeys(), BrowserKeys()
    await subscribe(push_client, token, good_keys, push_service.endpoint("good"))
    await subscribe(push_client, token, flaky_keys, push_service.endpoint("flaky"))
    push_service.statuses["/push/flaky"] = 500
    notification_id = await notify(engine, user["id"], title="Payment failed", type="payment_failed")
    outbox_id = await outbox_row(engine, user["id"], [notification_id])

    with pytest.raises(PushNotDelivered) as raised:
        await run_send_push(user_id=user["id"], notification_ids=[notification_id], outbox_id=outbox_id)
    assert not isinstance(raised.value, PERMANENT_ERRORS)  # so Dramatiq retries it
    assert (len(push_service.to("good")), len(push_service.to("flaky"))) == (1, 1)
    assert not await completed(engine, outbox_id)

    push_service.statuses["/push/flaky"] = 201
    await run_send_push(user_id=user["id"], notification_ids=[notification_id], outbox_id=outbox_id)
    await run_send_push(user_id=user["id"], notification_ids=[notification_id], outbox_id=outbox_id)  # redelivered
    assert (len(push_service.to("good")), len(push_service.to("flaky"))) == (1, 2)
    assert flaky_keys.decrypt(push_service.to("flaky")[-1].body)["title"] == "Payment failed"
    assert push_service.to("flaky")[-1].headers["urgency"] == "high"
    assert await completed(engine, outbox_id)
    async with create_sessionmaker(engine)() as session:
        assert len(list(await session.scalars(select(PushDelivery)))) == 2


async def test_a_push_service_redirect_is_not_followed_and_the_push_is_retried(
    push_client, push_service, push_runtime, engine
):
    user, token = await register(push_client)
    await subscribe(push_client, token, BrowserKeys(), push_service.endpoint("moved"))
    push_service.statuses["/push/moved"] = 307
    notification_id = await notify(engine, user["id"])
    with pytest.raises(PushNotDelivered):
        await run_send_push(user_id=user["id"], notification_ids=[notification_id])
    assert [r.path for r in push_service.received] == ["/push/moved"]  # never /push/elsewhere


async def test_a_device_whose_push_service_left_the_allow_list_is_not_sent_to(
    push_client, push_service, push_settings, engine
):
    user, token = await register(push_client)
    await subscribe(push_client, token, BrowserKeys(), push_service.endpoint("was-allowed"))
    notification_id = await notify(engine, user["id"])
    outbox_id = await outbox_row(engine, user["id"], [notification_id])
    runtime.configure(replace(push_settings, push_allowed_hosts=PushHosts.parse("fcm.googleapis.com")))
    try:
        await run_send_push(user_id=user["id"], notification_ids=[notification_id], outbox_id=outbox_id)
    finally:
        await runtime.dispose()
        runtime.configure(None)  # type: ignore[arg-type]
    assert push_service.received == []
    assert await completed(engine, outbox_id)  # nothing to retry: it stays refused


async def test_read_archived_obsolete_or_expired_items_are_never_pushed(
    push_client, push_service, push_runtime, engine
):
    user, token = await register(push_client)
    await subscribe(push_client, token, BrowserKeys(), push_service.endpoint("quiet"))
    now = datetime.now(UTC)
    ids = [await notify(engine, user["id"], title=f"Item {i}", dedupe_key=f"quiet:{i}") for i in range(3)]
    expired = await notify(engine, user["id"], title="Expired", expires_at=now - timedelta(seconds=1))
    async with create_sessionmaker(engine)() as session:
        for column, notification_id in zip(("read_at", "archived_at", "obsolete_at"), ids, strict=True):
            await session.execute(update(Notification).where(Notification.id == notification_id).values({column: now}))
        await session.commit()
    _, stranger_token = await register(push_client)
    outbox_id = await outbox_row(engine, user["id"], [*ids, expired])

    await run_send_push(user_id=user["id"], notification_ids=[*ids, expired], outbox_id=outbox_id)

    assert push_service.received == []
    assert await completed(engine, outbox_id)


async def test_a_user_without_devices_finishes_the_job_at_once(push_client, push_service, push_runtime, engine):
    user, _ = await register(push_client)
    notification_id = await notify(engine, user["id"])
    outbox_id = await outbox_row(engine, user["id"], [notification_id])
    await run_send_push(user_id=user["id"], notification_ids=[notification_id], outbox_id=outbox_id)
    assert push_service.received == [] and await completed(engine, outbox_id)


async def test_someone_elses_notification_is_never_pushed_to_you(push_client, push_service, push_runtime, engine):
    user, token = await register(push_client)
    other, _ = await register(push_client)
    await subscribe(push_client, token, BrowserKeys(), push_service.endpoint("nosy"))
    theirs = await notify(engine, other["id"], title="Not yours")
    await run_send_push(user_id=user["id"], notification_ids=[theirs])
    assert push_service.received == []


async def test_several_items_go_as_one_summary_push_linking_to_the_inbox(
    push_client, push_service, push_runtime, engine
):
    user, token = await register(push_client)
    keys = BrowserKeys()
    await subscribe(push_client, token, keys, push_service.endpoint("summary"))
    ids = [
        await notify(engine, user["id"], title="Booked A", dedupe_key="s:1", subject_kind="event", subject_id=1),
        await notify(engine, user["id"], title="Invited", type="group_invitation", dedupe_key="s:2"),
        await notify(engine, user["id"], title="News", type="general", dedupe_key="s:3"),
    ]

    await run_send_push(user_id=user["id"], notification_ids=ids)

    (request,) = push_service.to("summary")
    payload = keys.decrypt(request.body)
    assert payload["title"] == "3 new notifications"
    assert payload["url"] == f"{BASE_URL}/notifications"
    assert payload["body"].splitlines() == ["News", "Invited", "Booked A"]  # newest first
    assert request.headers["topic"] == "summary" and payload["tag"] == "summary"
    assert request.headers["urgency"] == "normal"  # the highest of normal, normal and low
    assert int(request.headers["ttl"]) > 2 * 86400  # the longest: the low-urgency news keeps 3 days


async def test_dramatiq_retries_a_push_a_push_service_failed_and_then_finishes_its_outbox_row(
    push_client, push_service, engine
):
    """Through the outbox and the app's own worker: the failed device is retried with backoff,
    the one that took the push is not sent to again, and the row is done only then."""
    user, token = await register(push_client)
    await subscribe(push_client, token, BrowserKeys(), push_service.endpoint("steady"))
    await subscribe(push_client, token, BrowserKeys(), push_service.endpoint("down"))
    push_service.statuses["/push/down"] = 503
    notification_id = await notify(engine, user["id"], type="event_cancelled", title="Cancelled: Test Concert")
    async with create_sessionmaker(engine)() as session:
        row = enqueue_after_commit(session, "send_push", user_id=user["id"], notification_ids=[notification_id])
        await session.commit()
    await hand_overs_finished()

    async def tried() -> bool:
        return len(push_service.to("down")) >= 1

    await eventually(tried)
    assert not await completed(engine, row.id)
    push_service.statuses["/push/down"] = 201

    async def done() -> bool:
        return await completed(engine, row.id)

    await eventually(done, within=20)
    assert len(push_service.to("steady")) == 1 and len(push_service.to("down")) >= 2
