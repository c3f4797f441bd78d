"""Reviews: after an event ends, each attendee with a confirmed seat may review it once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.auth.caller import Caller
from webapp.auth.models import User
from webapp.bookings.services import BookingService
from webapp.db import utcnow
from webapp.errors import Conflict, Forbidden, NotFound, ValidationFailed
from webapp.events.models import Event
from webapp.notifications.services import NewNotification, NotificationService
from webapp.reviews.models import Review

MAX_COMMENT_LENGTH = 2000


class ReviewService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, user: User, event_id: int, rating: int, comment: str) -> Review:
        event = await self.session.get(Event, event_id)
        if event is None:
            raise NotFound("No such event.")
        errors = {}
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            errors["rating"] = "Give a rating from 1 to 5."
        if len(comment) > MAX_COMMENT_LENGTH:
            errors["comment"] = f"Use at most {MAX_COMMENT_LENGTH} characters."
        if errors:
            raise ValidationFailed(errors)
        await self.check_can_review(user, event)
        review = Review(event_id=event.id, user_id=user.id, rating=rating, comment=comment.strip())
        self.session.add(review)
        try:
            async with self.session.begin_nested():  # a concurrent second review by the same user
                await self.session.flush()
        except IntegrityError:
            raise Conflict("You have already reviewed this event.", code="already_reviewed") from None
        await self.session.refresh(review, ["user"])
        if event.organizer_id != user.id:
            await NotificationService(self.session).notify(
                NewNotification(
                    user_id=event.organizer_id,
                    type="review_received",
                    title=f"{user.name} reviewed {event.title}: {rating} of 5",
                    body=review.comment,
                    url=f"/events/{event.id}#reviews",
                    data={"event_id": event.id, "review_id": review.id, "rating": rating},
                    actor_id=user.id,
                    subject_kind="event",
                    subject_id=event.id,
                    dedupe_key=f"review_received:{review.id}",
                )
            )
        return review

    async def check_can_review(self, user: Caller, event: Event) -> None:
        if event.status != "scheduled" or event.ends_at > utcnow():
            raise Conflict("You can review an event once it has ended.", code="event_not_ended")
        if not await BookingService(self.session).has_confirmed_seat(user.id, event.id):
            raise Forbidden("Only attendees with a confirmed booking can review this event.", code="not_attendee")
        if await self.session.scalar(select(Review.id).where(Review.event_id == event.id, Review.user_id == user.id)):
            raise Conflict("You have already reviewed this event.", code="already_reviewed")

    async def list_for_event(self, event_id: int) -> list[Review]:
        statement = select(Review).where(Review.event_id == event_id).order_by(Review.created_at.desc())
        return list(await self.session.scalars(statement))
