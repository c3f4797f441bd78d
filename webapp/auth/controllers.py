from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody, QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from webapp._cookies import parse_cookies
from webapp.auth.middleware import REFRESH_COOKIE, session_cookies
from webapp.auth.models import User
from webapp.auth.schemas import LoginRequest, RegisterRequest, SessionJson, UserJson, user_json
from webapp.auth.services import AccountService, LoginGuard, SessionService
from webapp.errors import DomainError, RateLimited, Unauthorized, ValidationFailed
from webapp.http import AppSettings, DbSession, client_address, current_user, require_user
from webapp.openapi import api_doc
from webapp.timeutil import common_timezones


def safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect a fresh login to another site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


async def log_in(request: Request[Any, Any, Any], email: str, password: str) -> User:
    """Checks the credentials on a read-only session, so the password hash (slow on purpose)
    is never verified while this request holds a write lock."""
    guard: LoginGuard = request.app.state.login_guard
    address = client_address(request)
    await guard.check(email, address)
    try:
        async with request.app.state.reader_sessionmaker() as reader:
            return await AccountService(reader).authenticate(email, password)
    except Unauthorized:
        await guard.record_failure(email, address)  # Redis, after the read session has closed
        raise


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
            )
        tokens = await SessionService(db_session, settings).start(user)
        return Redirect(target, cookies=session_cookies(settings, tokens))

    @get("/register")
    async def register_form(self) -> Template:
        return Template(
            "register.html", context={"errors": {}, "form": {"timezone": "UTC"}, "timezones": common_timezones()}
        )

    @post("/register", status_code=HTTP_200_OK)
    async def register(
        self, request: Request[Any, Any, Any], db_session: DbSession, settings: AppSettings
    ) -> Response[Any]:
        form = {k: str(v) for k, v in dict(await request.form()).items()}
        try:
            user = await AccountService(db_session).register(
                form.get("email", ""), form.get("password", ""), form.get("name", ""), form.get("timezone", "UTC")
            )
        except DomainError as exc:
            await db_session.rollback()
            errors = exc.fields or {"email": exc.message}
            form.pop("password", None)
            return Template(
                "register.html",
                context={"errors": errors, "form": form, "timezones": common_timezones()},
                status_code=exc.status_code,
            )
        tokens = await SessionService(db_session, settings).start(user)
        return Redirect("/", cookies=session_cookies(settings, tokens))

    @post("/logout", status_code=HTTP_200_OK)
    async def logout(self, request: Request[Any, Any, Any], db_session: DbSession, settings: AppSettings) -> Redirect:
        refresh = parse_cookies(request.headers.get("cookie", "")).get(REFRESH_COOKIE)
        if refresh:
            await SessionService(db_session, settings).revoke(refresh)
        return Redirect("/", cookies=session_cookies(settings, None))

    @get("/profile", guards=[require_user])
    async def profile(self, request: Request[Any, Any, Any]) -> Template:
        user = current_user(request)
        return Template(
            "profile.html",
            context={
                "errors": {},
                "form": {"name": user.name, "timezone": user.timezone},
                "timezones": common_timezones(),
                "saved": False,
            },
        )

    @post("/profile", guards=[require_user], status_code=HTTP_200_OK)
    async def update_profile(self, request: Request[Any, Any, Any], db_session: DbSession) -> Template:
        form = {k: str(v) for k, v in dict(await request.form()).items()}
        user = await db_session.merge(current_user(request))
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
        "/auth/register", status_code=HTTP_201_CREATED, **api_doc("Create an account and sign in", 400, 403, 409, 422)
    )
    async def register(
        self, data: JSONBody[RegisterRequest], db_session: DbSession, settings: AppSettings
    ) -> SessionJson:
        user = await AccountService(db_session).register(data.email, data.password, data.name, data.timezone)
        return {"user": user_json(user), "token": SessionService(db_session, settings).access_token(user)}

    @post("/auth/login", status_code=HTTP_200_OK, **api_doc("Sign in for a Bearer token", 400, 401, 403, 422, 429))
    async def login(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[LoginRequest],
        db_session: DbSession,
        settings: AppSettings,
    ) -> SessionJson:
        user = await log_in(request, data.email, data.password)
        return {"user": user_json(user), "token": SessionService(db_session, settings).access_token(user)}

    @get("/me", guards=[require_user], **api_doc("Show my account", auth=True))
    async def me(self, request: Request[Any, Any, Any]) -> UserJson:
        return user_json(current_user(request))
