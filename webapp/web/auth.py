from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody, QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT
from sqlalchemy.ext.asyncio import AsyncSession

from webapp._cookies import parse_cookies
from webapp.auth.middleware import REFRESH_COOKIE, AuthInfo, session_cookies
from webapp.auth.models import User
from webapp.auth.schemas import (
    LoginRequest,
    PasswordChange,
    RefreshRequest,
    RegisterRequest,
    SessionJson,
    TokensJson,
    UserJson,
    session_json,
    tokens_json,
    user_json,
)
from webapp.auth.services import AccountService, LoginGuard, SessionService, count_registration
from webapp.errors import DomainError, RateLimited, Unauthorized, ValidationFailed
from webapp.groups.services import GroupService
from webapp.http import (
    AppSettings,
    DbSession,
    client_address,
    current_user,
    error_json,
    provide_settings,
    require_user,
    retry_headers,
    session_of,
    signed_in_user,
)
from webapp.openapi import api_doc
from webapp.timeutil import common_timezones


def safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect a fresh login to another site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


async def sign_up(session: AsyncSession, email: str, password: str, name: str, timezone: str) -> User:
    """A new account, which takes over the group invitations already waiting for its address."""
    user = await AccountService(session).register(email, password, name, timezone)
    await GroupService(session).claim_invitations(user)
    return user


async def log_in(request: Request[Any, Any, Any], email: str, password: str) -> User:
    """Checks the credentials on a read-only session, so the password hash (slow on purpose)
    is never verified while this request holds a write lock."""

    async def authenticate() -> User:
        async with request.app.state.reader_sessionmaker() as reader:
            return await AccountService(reader).authenticate(email, password)

    guard: LoginGuard = request.app.state.login_guard
    return await guard.verify(email, client_address(request), authenticate)


async def change_password(request: Request[Any, Any, Any], session: AsyncSession, current: str, new: str) -> None:
    """The current password is a password check like a login (same limits); the new one is
    hashed before the update opens the transaction. Every other session of the account ends."""
    user = await signed_in_user(request)
    accounts = AccountService(session)
    guard: LoginGuard = request.app.state.login_guard
    await guard.verify(user.email, client_address(request), lambda: accounts.verify_password(user, current))
    await accounts.change_password(user, new)
    await SessionService(session, provide_settings(request)).end_others(user.id, keep=session_of(request))


class AuthPages(Controller):
    path = "/"
    include_in_schema = False

    @get("/login")
    async def login_form(self, next_path: Annotated[str | None, QueryParameter(name="next")] = None) -> Template:
        return Template("login.html", context={"next": safe_next(next_path), "errors": {}, "form": {}})

    @post("/login", status_code=HTTP_200_OK)
    async def login(
        self, request: Request[Any, Any, Any], db_session: DbSession, settings: AppSettings
    ) -> Response[Any]:
        form = dict(await request.form())
        email, password = str(form.get("email", "")), str(form.get("password", ""))
        target = safe_next(str(form.get("next", "/")))
        try:
            user = await log_in(request, email, password)
        except (Unauthorized, RateLimited) as exc:
            return Template(
                "login.html",
                context={"next": target, "errors": {"form": exc.message}, "form": {"email": email}},
                status_code=exc.status_code,
                headers=retry_headers(exc),
            )
        tokens = await SessionService(db_session, settings).start(user)
        return Redirect(target, cookies=session_cookies(settings, tokens))

    @get("/register")
    async def register_form(self) -> Template:
        return Template(
            "register.html",
            context={
                "errors": {},
                "form": {"timezone": "UTC"},  # without script; forms.js puts the browser's zone here
                "timezones": common_timezones(),
                "browser_zone": "default",
            },
        )

    @post("/register", status_code=HTTP_200_OK)
    async def register(
        self, request: Request[Any, Any, Any], db_session: DbSession, settings: AppSettings
    ) -> Response[Any]:
        form = {k: str(v) for k, v in dict(await request.form()).items()}
        try:
            await count_registration(request.app.state.registration_limiter, client_address(request))
            user = await sign_up(
                db_session,
                form.get("email", ""),
                form.get("password", ""),
                form.get("name", ""),
                form.get("timezone", "UTC"),
            )
        except DomainError as exc:
            await db_session.rollback()
            errors = exc.fields or {"email": exc.message}
            form.pop("password", None)
            return Template(
                "register.html",
                context={"errors": errors, "form": form, "timezones": common_timezones()},
                status_code=exc.status_code,
                headers=retry_headers(exc),
            )
        tokens = await SessionService(db_session, settings).start(user)
        return Redirect("/", cookies=session_cookies(settings, tokens))

    @post("/logout", status_code=HTTP_200_OK)
    async def logout(self, request: Request[Any, Any, Any], db_session: DbSession, settings: AppSettings) -> Redirect:
        refresh = parse_cookies(request.headers.get("cookie", "")).get(REFRESH_COOKIE)
        user_id = request.user.id if request.user is not None else None
        await SessionService(db_session, settings).log_out(user_id, session_of(request), refresh)
        return Redirect("/", cookies=session_cookies(settings, None))

    @get("/profile", guards=[require_user])
    async def profile(self, request: Request[Any, Any, Any]) -> Template:
        user = await signed_in_user(request)
        return Template(
            "profile.html",
            context={
                "errors": {},
                "form": {"name": user.name, "timezone": user.timezone},
                "timezones": common_timezones(),
                "saved": False,
            },
        )

    @post("/profile/password", guards=[require_user], status_code=HTTP_200_OK)
    async def change_password(self, request: Request[Any, Any, Any], db_session: DbSession) -> Template:
        form = {k: str(v) for k, v in dict(await request.form()).items()}
        user = await signed_in_user(request)
        context = {"form": {"name": user.name, "timezone": user.timezone}, "timezones": common_timezones()}
        try:
            await change_password(request, db_session, form.get("current_password", ""), form.get("new_password", ""))
        except DomainError as exc:
            await db_session.rollback()
            errors = exc.fields or {"current_password": exc.message}
            return Template(
                "profile.html",
                context={**context, "errors": {}, "password_errors": errors, "saved": False},
                status_code=exc.status_code,
                headers=retry_headers(exc),
            )
        return Template("profile.html", context={**context, "errors": {}, "saved": False, "password_changed": True})

    @post("/profile", guards=[require_user], status_code=HTTP_200_OK)
    async def update_profile(self, request: Request[Any, Any, Any], db_session: DbSession) -> Template:
        form = {k: str(v) for k, v in dict(await request.form()).items()}
        user = await db_session.merge(await signed_in_user(request))
        errors: dict[str, str] = {}
        try:
            await AccountService(db_session).update_profile(user, form.get("name", ""), form.get("timezone", ""))
        except ValidationFailed as exc:
            await db_session.rollback()
            errors = exc.fields
        return Template(
            "profile.html",
            context={"errors": errors, "form": form, "timezones": common_timezones(), "saved": not errors},
            status_code=422 if errors else 200,
        )


class AuthApi(Controller):
    path = "/api/v1"
    tags = ["auth"]

    @post(
        "/auth/register",
        status_code=HTTP_201_CREATED,
        **api_doc("Create an account and sign in", 400, 403, 409, 413, 422, 429),
    )
    async def register(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[RegisterRequest],
        db_session: DbSession,
        settings: AppSettings,
    ) -> SessionJson:
        await count_registration(request.app.state.registration_limiter, client_address(request))
        user = await sign_up(db_session, data.email, data.password, data.name, data.timezone)
        return session_json(user, await SessionService(db_session, settings).start(user))

    @post("/auth/login", status_code=HTTP_200_OK, **api_doc("Sign in for a Bearer token", 400, 401, 403, 413, 422, 429))
    async def login(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[LoginRequest],
        db_session: DbSession,
        settings: AppSettings,
    ) -> SessionJson:
        user = await log_in(request, data.email, data.password)
        return session_json(user, await SessionService(db_session, settings).start(user))

    @post(
        "/auth/refresh",
        status_code=HTTP_200_OK,
        **api_doc("Trade a refresh token for new tokens", 400, 401, 403, 413, 422),
    )
    async def refresh(
        self, data: JSONBody[RefreshRequest], db_session: DbSession, settings: AppSettings
    ) -> Response[TokensJson]:
        """A new access token and a new refresh token for one unused refresh token. A refresh
        token used a second time ends its whole session (it must have leaked)."""
        refreshed = await SessionService(db_session, settings).rotate(data.refresh_token)
        if refreshed is None or refreshed.tokens is None:
            # Answered, not raised: a reused token has just ended its session, and that must commit.
            return error_json(401, "invalid_refresh_token", "The refresh token is not valid. Log in again.")
        return Response(tokens_json(refreshed.tokens))

    @post(
        "/auth/logout",
        guards=[require_user],
        status_code=HTTP_204_NO_CONTENT,
        **api_doc("End this session at once", 403, auth=True),
    )
    async def logout(
        self, request: Request[Any, Any, Any], db_session: DbSession, settings: AppSettings
    ) -> Response[None]:
        """Ends the session of the access token (or cookies) the request came with, at once."""
        await SessionService(db_session, settings).log_out(current_user(request).id, session_of(request))
        info = request.scope.get("auth")
        cookies = session_cookies(settings, None) if isinstance(info, AuthInfo) and info.via == "cookie" else []
        return Response(None, status_code=HTTP_204_NO_CONTENT, cookies=cookies)

    @post(
        "/auth/password",
        guards=[require_user],
        status_code=HTTP_204_NO_CONTENT,
        **api_doc("Change my password (ends my other sessions)", 400, 403, 413, 422, 429, auth=True),
    )
    async def change_password(
        self, request: Request[Any, Any, Any], data: JSONBody[PasswordChange], db_session: DbSession
    ) -> None:
        """Changes the signed-in user's password: 401 for a wrong current one, 422 for a weak new one."""
        await change_password(request, db_session, data.current_password, data.new_password)

    @get("/me", guards=[require_user], **api_doc("Show my account", auth=True))
    async def me(self, request: Request[Any, Any, Any]) -> UserJson:
        return user_json(await signed_in_user(request))
