from __future__ import annotations

from typing import Any, TypedDict

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody
from litestar.response import Template
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from webapp.auth.schemas import UserRef
from webapp.errors import ValidationFailed
from webapp.events.services import EventService
from webapp.flash import flash_redirect
from webapp.http import DbSession, RowId, current_user, require_user, signed_in_user
from webapp.openapi import Timestamp, api_doc
from webapp.reviews.models import Review
from webapp.reviews.services import ReviewService
from webapp.validation import Int32Field, Text


class ReviewCreate(msgspec.Struct):
    rating: Int32Field
    comment: Text = ""


class ReviewJson(TypedDict):
    id: int
    event_id: int
    user: UserRef
    rating: int
    comment: str
    created_at: Timestamp


def review_json(review: Review) -> ReviewJson:
    return {
        "id": review.id,
        "event_id": review.event_id,
        "user": {"id": review.user.id, "name": review.user.name},
        "rating": review.rating,
        "comment": review.comment,
        "created_at": review.created_at.isoformat(),
    }


class ReviewPages(Controller):
    path = "/events/{event_id:int}/review"
    guards = [require_user]
    include_in_schema = False

    @get("/")
    async def form(self, request: Request[Any, Any, Any], db_session: DbSession, event_id: RowId) -> Template:
        event = await EventService(db_session).get(event_id)
        await ReviewService(db_session).check_can_review(current_user(request), event)
        return Template("review_form.html", context={"event": event, "form": {}, "errors": {}})

    @post("/", status_code=HTTP_200_OK)
    async def create(self, request: Request[Any, Any, Any], db_session: DbSession, event_id: RowId) -> Response[Any]:
        form = {k: str(v) for k, v in dict(await request.form()).items()}
        try:
            rating = int(form.get("rating", ""))
        except ValueError:
            rating = 0
        try:
            await ReviewService(db_session).create(
                await signed_in_user(request), event_id, rating, form.get("comment", "")
            )
        except ValidationFailed as exc:
            await db_session.rollback()
            event = await EventService(db_session).get(event_id)
            return Template(
                "review_form.html", context={"event": event, "form": form, "errors": exc.fields}, status_code=422
            )
        return flash_redirect(request, f"/events/{event_id}", "Thank you: your review is posted below.")


class ReviewApi(Controller):
    path = "/api/v1/events/{event_id:int}/reviews"
    guards = [require_user]
    tags = ["reviews"]

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        **api_doc("Review an event I attended", 400, 403, 404, 409, 413, 422, auth=True),
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ReviewCreate],
        db_session: DbSession,
        event_id: RowId,
    ) -> ReviewJson:
        return review_json(
            await ReviewService(db_session).create(await signed_in_user(request), event_id, data.rating, data.comment)
        )
