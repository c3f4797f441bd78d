"""Accounts and sessions: registration, password checks, rotating refresh tokens."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.auth.models import RefreshToken, User
from webapp.auth.passwords import password_problem
from webapp.auth.tokens import hash_refresh_token, issue_access_token, new_refresh_token
from webapp.db import utcnow
from webapp.errors import Conflict, RateLimited, Unauthorized, ValidationFailed
from webapp.ratelimit import RateLimiter
from webapp.realtime.doorbell import queue_after_commit
from webapp.realtime.protocol import SessionEndedMessage
from webapp.settings import Settings
from webapp.timeutil import is_valid_timezone

EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
# Sign-up logs the person straight in (there is no email round trip), so it has to say when an
# address cannot be used; it says no more than that, after the same argon2 work either way.
EMAIL_UNAVAILABLE = "This email cannot be used to sign up. If it is yours, log in instead."
ROLES = ("member", "admin")
ROTATION_GRACE = timedelta(seconds=30)

_T = TypeVar("_T")
_hasher = PasswordHasher()
# Verifying against a fixed hash when the account does not exist keeps login timing the same.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def normalize_email(email: str) -> str:
    return email.strip().lower()


def is_valid_email(email: str) -> bool:
    return bool(EMAIL_PATTERN.match(email)) and len(email) <= 254


def validate_profile(name: str, timezone: str) -> dict[str, str]:
    errors = {}
    if not name.strip():
        errors["name"] = "Enter your name."
    elif len(name.strip()) > 100:
        errors["name"] = "Use at most 100 characters."
    if not is_valid_timezone(timezone):
        errors["timezone"] = "Choose a time zone from the list (e.g. Europe/Berlin)."
    return errors


@dataclass(frozen=True)
class SessionTokens:
    access_token: str
    refresh_token: str
    session: str
    expires_in: int  # seconds the access token lives


@dataclass(frozen=True)
class Refreshed:
    user: User
    session: str
    # None when the token was rotated moments ago by another request of the same browser.
    tokens: SessionTokens | None


class AccountService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def register(self, email: str, password: str, name: str, timezone: str = "UTC", role: str = "member") -> User:
        email = normalize_email(email)
        timezone = timezone.strip()  # typed into a text field: spaces around it are not part of it
        errors = validate_profile(name, timezone)
        if not is_valid_email(email):
            errors["email"] = "Enter a valid email address."
        problem = password_problem(password)
        if problem:
            errors["password"] = problem
        if role not in ROLES:
            errors["role"] = "Unknown role."
        if errors:
            raise ValidationFailed(errors)
        # argon2 is slow on purpose: it runs in a thread, before the transaction takes any lock.
        password_hash = await asyncio.to_thread(_hasher.hash, password)
        if await self.find_by_email(email) is not None:
            raise Conflict(EMAIL_UNAVAILABLE, code="email_taken")
        user = User(email=email, name=name.strip(), password_hash=password_hash, timezone=timezone, role=role)
        self.session.add(user)
        try:
            async with self.session.begin_nested():  # a concurrent registration of the same address
                await self.session.flush()
        except IntegrityError:
            raise Conflict(EMAIL_UNAVAILABLE, code="email_taken") from None
        return user

    async def authenticate(self, email: str, password: str) -> User:
        user = await self.find_by_email(email)
        try:
            await asyncio.to_thread(_hasher.verify, user.password_hash if user else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            user = None
        if user is None:
            raise Unauthorized("Wrong email or password.", code="invalid_credentials")
        return user

    async def verify_password(self, user: User, password: str) -> User:
        """The signed-in user's own password, checked again (before a password change)."""
        try:
            await asyncio.to_thread(_hasher.verify, user.password_hash, password)
        except (VerificationError, InvalidHashError):
            raise Unauthorized("Your current password is wrong.", code="invalid_credentials") from None
        return user

    async def change_password(self, user: User, new_password: str) -> None:
        """Stores a new password. The caller has verified the current one (within the limits)."""
        problem = password_problem(new_password)
        if problem:
            raise ValidationFailed({"new_password": problem})
        # Hashed before the statement that opens the transaction: no lock is held meanwhile.
        password_hash = await asyncio.to_thread(_hasher.hash, new_password)
        await self.session.execute(update(User).where(User.id == user.id).values(password_hash=password_hash))

    async def find_by_email(self, email: str) -> User | None:
        return await self.session.scalar(select(User).where(User.email == normalize_email(email)))

    async def get(self, user_id: int) -> User | None:
        return await self.session.get(User, user_id)

    async def update_profile(self, user: User, name: str, timezone: str) -> User:
        timezone = timezone.strip()
        errors = validate_profile(name, timezone)
        if errors:
            raise ValidationFailed(errors)
        user.name = name.strip()
        user.timezone = timezone
        return user


async def count_registration(limiter: RateLimiter, address: str) -> None:
    """Sign-ups per client address: each one costs an argon2 hash, and each answer says whether
    an address is taken."""
    await limiter.enforce(f"register:{address}", "Too many sign-ups from your network. Try again later.")


class LoginGuard:
    """Limits password checks (login, password change) that fail.

    Each check is counted before argon2 runs and given back when it succeeds, so a hundred
    guesses sent at once are counted before any of them is verified: no more than the limit
    ever reach the hash. Three limits, each a fixed window:
    - per account and address: the attacker at one address (the tight one);
    - per address across accounts: one address spraying many accounts;
    - per account from every address: slower, so guesses spread over many addresses are
      throttled too, while an attacker elsewhere needs many more failures than the owner's own
      tight limit to lock the owner out.
    """

    def __init__(self, per_account_address: RateLimiter, per_address: RateLimiter, per_account: RateLimiter) -> None:
        if not per_account_address.counter is per_address.counter is per_account.counter:
            raise ValueError("the login limits count in one store")  # one round trip for all three
        self.counter = per_account_address.counter
        self.per_account_address = per_account_address
        self.per_address = per_address
        self.per_account = per_account

    def _keys(self, email: str, address: str) -> list[tuple[RateLimiter, str]]:
        account = normalize_email(email)
        return [
            (self.per_account_address, f"login:acct-addr:{account}|{address}"),
            (self.per_address, f"login:addr:{address}"),
            (self.per_account, f"login:acct:{account}"),
        ]

    async def verify(self, email: str, address: str, check: Callable[[], Awaitable[_T]]) -> _T:
        """Runs `check` (which raises Unauthorized on a wrong password) within the limits."""
        limits = self._keys(email, address)
        windows = [(key, limiter.window_seconds) for limiter, key in limits]
        counts = await self.counter.hit_many(windows)  # one atomic step, before the check
        for (limiter, _), count in zip(limits, counts, strict=True):
            if count > limiter.limit:
                await self.counter.forget_many(windows)  # refused: not a check that ran
                raise RateLimited("Too many failed attempts. Try again later.", retry_after=limiter.retry_after())
        try:
            result = await check()
        except Unauthorized:
            raise  # a failed check stays counted
        except BaseException:
            await self.counter.forget_many(windows)
            raise
        await self.counter.forget_many(windows)  # only failures count against anyone
        return result


class SessionService:
    """Issues access tokens and rotating, revocable refresh tokens.

    Refresh tokens form a family per login: the session, whose id (`sid`) every access token of
    it carries. Presenting a token that was already rotated means it leaked: the whole family is
    revoked (RFC 9700 §4.14.2). Revoking a family ends the session at once: after commit the
    doorbell tells every web process, which refuses its access tokens from then on and closes
    its streams (webapp.realtime.ended_sessions).
    """

    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings

    def access_token(self, user: User, session: str) -> str:
        return issue_access_token(
            user.id, self.settings.secret_key, timedelta(seconds=self.settings.access_token_seconds), session
        )

    async def start(self, user: User) -> SessionTokens:
        return await self._issue(user, family=secrets.token_hex(16))

    async def rotate(self, refresh_token: str, *, grace: bool = False) -> Refreshed | None:
        """Exchanges a refresh token for a new pair; None when it is not (or no longer) valid.

        With `grace` (the browser's cookies), a token rotated moments ago answers the user without
        new tokens: that is the browser sending several requests with the same expired cookie at
        once, not a thief, and the first response already carries the new cookies. API clients
        get the new token in the body of one answer, so for them any second use is reuse.
        """
        # Locked: a logout that revokes the family meanwhile either waits for this rotation (and
        # then revokes the new token too, see _end) or has committed first (and this one refuses).
        row = await self.session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(refresh_token)).with_for_update()
        )
        now = utcnow()
        if row is None or row.revoked_at is not None or row.expires_at <= now:
            return None
        if row.used_at is not None:
            if grace and now - row.used_at <= ROTATION_GRACE:
                user = await self.session.get(User, row.user_id)
                return Refreshed(user, row.family, None) if user else None
            await self._end(row.family, row.user_id)
            return None
        row.used_at = now
        user = await self.session.get(User, row.user_id)
        if user is None:
            return None
        tokens = await self._issue(user, family=row.family)
        await self.session.flush()
        return Refreshed(user, row.family, tokens)

    async def holder_of(self, refresh_token: str) -> tuple[User, str] | None:
        """The user (and session) a live, unused refresh token belongs to, without rotating it."""
        row = await self.session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(refresh_token))
        )
        if row is None or row.revoked_at is not None or row.used_at is not None or row.expires_at <= utcnow():
            return None
        user = await self.session.get(User, row.user_id)
        return (user, row.family) if user else None

    def access_expiry(self) -> datetime:
        """When an access token issued now expires."""
        return utcnow() + timedelta(seconds=self.settings.access_token_seconds)

    async def log_out(self, user_id: int | None, session: str | None, refresh_token: str | None = None) -> None:
        """Ends the session a request came with: the one its access token names, or else (an
        access cookie already gone) the one its refresh token belongs to."""
        if user_id is not None and session is not None:
            await self._end(session, user_id)
            return
        if refresh_token:
            row = await self.session.scalar(
                select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(refresh_token))
            )
            if row is not None:
                await self._end(row.family, row.user_id)

    async def end_others(self, user_id: int, keep: str | None) -> None:
        """Ends every live session of the account but `keep` (after a password change: whoever
        else holds one is out at once)."""
        families = await self.session.scalars(
            select(RefreshToken.family)
            .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None), RefreshToken.family != keep)
            .distinct()
        )
        for family in list(families):
            await self._end(family, user_id)

    async def _issue(self, user: User, family: str) -> SessionTokens:
        refresh = new_refresh_token()
        self.session.add(
            RefreshToken(
                user_id=user.id,
                token_hash=hash_refresh_token(refresh),
                family=family,
                expires_at=utcnow() + timedelta(days=self.settings.refresh_token_days),
            )
        )
        return SessionTokens(
            access_token=self.access_token(user, family),
            refresh_token=refresh,
            session=family,
            expires_in=self.settings.access_token_seconds,
        )

    async def _end(self, family: str, user_id: int) -> None:
        revoke = (
            update(RefreshToken)
            .where(RefreshToken.family == family, RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        await self.session.execute(revoke)
        # Twice, on purpose (PostgreSQL, READ COMMITTED): a rotation holding a row of the family
        # makes the first statement wait for its commit, and the new token that rotation inserted
        # is invisible to the first statement's snapshot; the second one, with a fresh snapshot,
        # revokes it. (SQLite runs writers one at a time: the second statement finds nothing.)
        await self.session.execute(revoke)
        queue_after_commit(self.session.sync_session, [SessionEndedMessage(user=user_id, session=family)])
