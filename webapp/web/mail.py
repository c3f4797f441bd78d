"""The signed open link of emails and pushes, and the development outbox (/dev/mail)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import PathParameter
from litestar.response import Redirect, Template

from webapp.http import AppSettings, DbSession
from webapp.mail.transport import one_stored_mail, stored_mail
from webapp.notifications.open_link import open_by_link
from webapp.settings import Settings

# A signed link is a JWT of a few hundred characters; anything far longer is not one.
LinkToken = Annotated[str, PathParameter(min_length=1, max_length=2000)]
MailName = Annotated[str, PathParameter(max_length=40)]


@get("/n/{token:str}", opt={"writes": True}, include_in_schema=False, cache_control=None)
async def open_link(
    request: Request[Any, Any, Any], db_session: DbSession, settings: AppSettings, token: LinkToken
) -> Redirect:
    """Opens the notification of a signed link: marks it seen and read, then follows its url."""
    target = await open_by_link(db_session, token, settings.secret_key)
    return Redirect(target, headers={"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})


class DevMailPages(Controller):
    """What development sent by email (no SMTP_URL): var/mail/*.eml. Not in production."""

    path = "/dev/mail"
    include_in_schema = False

    @get("/")
    async def listing(self, settings: AppSettings) -> Template:
        _development_only(settings)
        return Template("dev_mail.html", context={"messages": stored_mail(settings.mail_dir), "message": None})

    @get("/{name:str}")
    async def one(self, settings: AppSettings, name: MailName) -> Template:
        _development_only(settings)
        mail = one_stored_mail(settings.mail_dir, name)
        if mail is None:
            raise NotFoundException("No such message.")
        return Template("dev_mail.html", context={"messages": None, "message": mail})

    @get("/{name:str}/html", media_type="text/html")
    async def html(self, settings: AppSettings, name: MailName) -> Response[str]:
        """The HTML part as the mail client gets it, shown in a sandboxed frame of the message page."""
        _development_only(settings)
        mail = one_stored_mail(settings.mail_dir, name)
        if mail is None:
            raise NotFoundException("No such message.")
        return Response(mail.part("html"), media_type="text/html", headers={"Content-Security-Policy": "sandbox"})


def _development_only(settings: Settings) -> None:
    if settings.production:
        raise NotFoundException("No such page.")
