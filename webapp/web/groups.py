from __future__ import annotations

import json
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, JSONBody
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.db import MAX_ROW_ID
from webapp.errors import Conflict, DomainError, ValidationFailed
from webapp.flash import flash_redirect
from webapp.groups.schemas import GroupCreate, GroupJson, InvitationCreate, InvitationJson, group_json, invitation_json
from webapp.groups.services import GroupService
from webapp.http import DbSession, RowId, current_user, require_user
from webapp.notifications.services import NotificationService, notification_json
from webapp.notifications.views import item_view
from webapp.openapi import api_doc
from webapp.validation import parse_int
from webapp.web.notifications import count_trigger


class GroupPages(Controller):
    path = "/"
    guards = [require_user]
    include_in_schema = False

    @get("/groups")
    async def index(self, request: Request[Any, Any, Any], db_session: DbSession) -> Template:
        return await self._index(request, db_session)

    async def _index(
        self,
        request: Request[Any, Any, Any],
        session: AsyncSession,
        errors: dict[str, str] | None = None,
        form: dict[str, str] | None = None,
        status: int = 200,
    ) -> Template:
        service = GroupService(session)
        user = current_user(request)
        return Template(
            "groups.html",
            context={
                "groups": await service.list_for_member(user),
                "invitations": await service.pending_invitations(user),
                "errors": errors or {},
                "form": form or {},
            },
            status_code=status,
        )

    @post("/groups", status_code=HTTP_200_OK)
    async def create(self, request: Request[Any, Any, Any], db_session: DbSession) -> Response[Any]:
        name = str(dict(await request.form()).get("name", ""))
        try:
            group = await GroupService(db_session).create(current_user(request), name)
        except DomainError as exc:
            await db_session.rollback()
            return await self._index(
                request, db_session, exc.fields or {"name": exc.message}, {"name": name}, exc.status_code
            )
        return flash_redirect(request, f"/groups/{group.id}", f"{group.name} is created: invite people from here.")

    @get("/groups/{group_id:int}")
    async def detail(self, request: Request[Any, Any, Any], db_session: DbSession, group_id: RowId) -> Template:
        return await self._detail(request, db_session, group_id)

    async def _detail(
        self,
        request: Request[Any, Any, Any],
        session: AsyncSession,
        group_id: RowId,
        errors: dict[str, str] | None = None,
        notice: str = "",
        status: int = 200,
    ) -> Template:
        service = GroupService(session)
        group = await service.get_for_member(current_user(request), group_id)
        return Template(
            "group_detail.html",
            context={
                "group": group,
                "invitations": await service.sent_invitations(group),
                "errors": errors or {},
                "notice": notice,
            },
            status_code=status,
        )

    @post("/groups/{group_id:int}/invite", status_code=HTTP_200_OK)
    async def invite(self, request: Request[Any, Any, Any], db_session: DbSession, group_id: RowId) -> Template:
        email = str(dict(await request.form()).get("email", ""))
        try:
            invitation = await GroupService(db_session).invite(
                current_user(request), group_id, email, limiter=request.app.state.invitation_limiter
            )
        except DomainError as exc:
            if exc.status_code in (404, 429):
                raise  # no such group, or too many invitations (an error page with Retry-After)
            await db_session.rollback()
            return await self._detail(
                request, db_session, group_id, exc.fields or {"email": exc.message}, status=exc.status_code
            )
        return await self._detail(request, db_session, group_id, notice=f"Invitation sent to {invitation.address}.")

    @post("/invitations/{invitation_id:int}/{answer:str}", status_code=HTTP_200_OK)
    async def answer(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        invitation_id: RowId,
        answer: FromPath[str],
    ) -> Response[Any]:
        service = GroupService(db_session)
        user = current_user(request)
        form = dict(await request.form())
        if answer not in ("accept", "decline"):
            raise NotFoundException("No such action.")
        try:
            if answer == "accept":
                invitation = await service.accept(user, invitation_id)
            else:
                invitation = await service.decline(user, invitation_id)
        except Conflict as exc:
            if exc.code != "invitation_answered" or not request.headers.get("hx-request"):
                raise  # a plain form post gets the friendly 409 page
            # Answered already (another tab, a double click): show what it became, and say why.
            db_session.expire_all()
            invitation = await service.get_for_invitee(user, invitation_id)
            return await self._answered(request, user, db_session, invitation, form, error=exc.message)
        await db_session.commit()
        return await self._answered(request, user, db_session, invitation, form)

    async def _answered(
        self,
        request: Request[Any, Any, Any],
        user: Any,
        session: AsyncSession,
        invitation: Any,
        form: dict[str, Any],
        error: str = "",
    ) -> Response[Any]:
        status = 409 if error else 200
        if form.get("notification_id"):
            # Answered from the notification itself: it is read now and shows the answer, in place.
            response = await self._answered_notification(user, session, str(form["notification_id"]), invitation.status)
        elif request.headers.get("hx-request"):
            response = Template("_invitation.html", context={"invitation": invitation})
        else:
            return Redirect(f"/groups/{invitation.group_id}" if invitation.status == "accepted" else "/groups")
        response.status_code = status
        if error:
            # The toast that error pages raise for htmx (see webapp.http.error_page), with the count, if any.
            triggers = json.loads(response.headers.get("HX-Trigger", "{}"))
            triggers["tidings:error"] = {"message": error}
            response.headers["HX-Trigger"] = json.dumps(triggers)
        return response

    async def _answered_notification(self, user: Any, session: Any, notification_id: str, status: str) -> Template:
        notifications = NotificationService(session)
        try:
            notification_id_value = parse_int(notification_id, "notification_id", 1, MAX_ROW_ID)
        except ValidationFailed:
            notification_id_value = None
        if notification_id_value is None:
            raise NotFoundException("No such notification.")
        notification = await notifications.annotate(user.id, notification_id_value, invitation_status=status)
        notification, state = await notifications.mark_read(user.id, notification.id)
        return Template(
            "_notification_item.html",
            context={"n": item_view(notification_json(notification), user.timezone)},
            headers=count_trigger(state),
        )


class GroupApi(Controller):
    path = "/api/v1"
    guards = [require_user]
    tags = ["groups"]

    @post("/groups", status_code=HTTP_201_CREATED, **api_doc("Create a group", 400, 403, 413, 422, auth=True))
    async def create(
        self, request: Request[Any, Any, Any], data: JSONBody[GroupCreate], db_session: DbSession
    ) -> GroupJson:
        return group_json(await GroupService(db_session).create(current_user(request), data.name))

    @post(
        "/groups/{group_id:int}/invitations",
        status_code=HTTP_201_CREATED,
        **api_doc("Invite someone to a group I belong to", 400, 403, 404, 409, 413, 422, auth=True),
    )
    async def invite(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[InvitationCreate],
        db_session: DbSession,
        group_id: RowId,
    ) -> InvitationJson:
        limiter = request.app.state.invitation_limiter
        invitation = await GroupService(db_session).invite(current_user(request), group_id, data.email, limiter=limiter)
        return invitation_json(invitation)

    @post(
        "/invitations/{invitation_id:int}/accept",
        status_code=HTTP_200_OK,
        **api_doc("Accept an invitation to a group", 403, 404, 409, 422, auth=True),
    )
    async def accept(
        self, request: Request[Any, Any, Any], db_session: DbSession, invitation_id: RowId
    ) -> InvitationJson:
        invitation = await GroupService(db_session).accept(current_user(request), invitation_id)
        await db_session.commit()
        return invitation_json(invitation)

    @post(
        "/invitations/{invitation_id:int}/decline",
        status_code=HTTP_200_OK,
        **api_doc("Decline an invitation to a group", 403, 404, 409, 422, auth=True),
    )
    async def decline(
        self, request: Request[Any, Any, Any], db_session: DbSession, invitation_id: RowId
    ) -> InvitationJson:
        invitation = await GroupService(db_session).decline(current_user(request), invitation_id)
        await db_session.commit()
        return invitation_json(invitation)
