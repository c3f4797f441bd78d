"""Web Push endpoints: the server's public VAPID key, a user's push subscriptions (one per device),
the device list fragment of the preferences page, and the service worker at the site root."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.params import JSONBody
from litestar.response import File, Template
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from webapp.errors import NotFound
from webapp.http import AppSettings, DbSession, RowId, current_user, require_user
from webapp.openapi import Timestamp, api_doc
from webapp.push.models import ENDPOINT_MAX, PushSubscription
from webapp.push.services import PushService
from webapp.settings import Settings
from webapp.validation import NO_NUL_PATTERN

EndpointField = Annotated[str, msgspec.Meta(pattern=NO_NUL_PATTERN, max_length=ENDPOINT_MAX)]
KeyField = Annotated[str, msgspec.Meta(pattern=NO_NUL_PATTERN, max_length=200)]


class PushKeys(msgspec.Struct):
    p256dh: KeyField
    auth: KeyField


class PushSubscriptionCreate(msgspec.Struct):
    """A browser's `PushSubscription.toJSON()`, as it is."""

    endpoint: EndpointField
    keys: PushKeys
    expirationTime: float | None = None  # noqa: N815 - the browser's name; push services here never set it


class PushKeyJson(TypedDict):
    public_key: str


class PushSubscriptionJson(TypedDict):
    id: int
    endpoint: str
    device: str
    created_at: Timestamp
    last_success_at: Timestamp | None


class PushSubscriptionList(TypedDict):
    items: list[PushSubscriptionJson]


def subscription_json(subscription: PushSubscription) -> PushSubscriptionJson:
    return {
        "id": subscription.id,
        "endpoint": subscription.endpoint,
        "device": subscription.device,
        "created_at": subscription.created_at.isoformat(),
        "last_success_at": subscription.last_success_at.isoformat() if subscription.last_success_at else None,
    }


def push_service(db_session: Any, settings: Settings) -> PushService:
    return PushService(db_session, settings.push_allowed_hosts)


class PushApi(Controller):
    path = "/api/v1"
    tags = ["push"]

    @get("/push/key", **api_doc("The server's VAPID public key, for pushManager.subscribe", 404))
    async def key(self, settings: AppSettings) -> PushKeyJson:
        if not settings.push_enabled or settings.vapid_public_key is None:
            raise NotFound("Web Push is not configured on this server.", code="push_disabled")
        return {"public_key": settings.vapid_public_key}

    @post(
        "/me/push-subscriptions",
        guards=[require_user],
        status_code=HTTP_201_CREATED,
        **api_doc("Enable push on a device: store its PushSubscription", 400, 403, 413, 422, auth=True),
    )
    async def subscribe(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        settings: AppSettings,
        data: JSONBody[PushSubscriptionCreate],
    ) -> PushSubscriptionJson:
        subscription = await push_service(db_session, settings).subscribe(
            current_user(request).id,
            data.endpoint,
            data.keys.p256dh,
            data.keys.auth,
            request.headers.get("user-agent", ""),
        )
        return subscription_json(subscription)

    @get("/me/push-subscriptions", guards=[require_user], **api_doc("List my push devices", auth=True))
    async def listing(
        self, request: Request[Any, Any, Any], db_session: DbSession, settings: AppSettings
    ) -> PushSubscriptionList:
        items = await push_service(db_session, settings).listing(current_user(request).id)
        return {"items": [subscription_json(s) for s in items]}

    @delete(
        "/me/push-subscriptions/{subscription_id:int}",
        guards=[require_user],
        status_code=HTTP_204_NO_CONTENT,
        **api_doc("Disable push on a device", 403, 404, 422, auth=True),
    )
    async def unsubscribe(
        self, request: Request[Any, Any, Any], db_session: DbSession, settings: AppSettings, subscription_id: RowId
    ) -> None:
        await push_service(db_session, settings).unsubscribe(current_user(request).id, subscription_id)


class PushPages(Controller):
    """The device list of `_push_devices.html` (loaded into the preferences page by htmx)."""

    path = "/push/devices"
    guards = [require_user]
    include_in_schema = False

    @get("/")
    async def devices(self, request: Request[Any, Any, Any], db_session: DbSession, settings: AppSettings) -> Template:
        return await _device_list(request, db_session, settings)

    @post("/{subscription_id:int}/remove", status_code=HTTP_200_OK)
    async def remove(
        self, request: Request[Any, Any, Any], db_session: DbSession, settings: AppSettings, subscription_id: RowId
    ) -> Template:
        await push_service(db_session, settings).unsubscribe(current_user(request).id, subscription_id)
        return await _device_list(request, db_session, settings)


async def _device_list(request: Request[Any, Any, Any], db_session: Any, settings: Settings) -> Template:
    devices = await push_service(db_session, settings).listing(current_user(request).id)
    return Template(
        "_push_device_list.html",
        context={
            "devices": devices,
            "push_enabled": settings.push_enabled,
            "vapid_public_key": settings.vapid_public_key,
        },
    )


@get("/sw.js", include_in_schema=False, sync_to_thread=False)
def service_worker(settings: AppSettings) -> Response[Any]:
    """From the site root, so its scope is the whole site. `no-cache`: the browser asks again on
    every update check, and a changed worker reaches users at their next visit."""
    return File(
        settings.static_dir / "js" / "sw.js",
        media_type="text/javascript; charset=utf-8",
        content_disposition_type="inline",
        headers={"Cache-Control": "no-cache"},
    )
