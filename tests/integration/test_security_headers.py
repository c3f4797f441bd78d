"""Security headers on every answer, HEAD wherever GET works, 405 with Allow, and the OpenAPI UI
served from the app itself (no CDN).

The browser side (no CSP violation on the real pages, no framing by another origin) is proven in
tests/e2e/test_security_headers_ui.py.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from html.parser import HTMLParser
from typing import Any

import httpx
from litestar.testing import AsyncTestClient

from tests.api import bearer, create_event, register
from tests.integration.pages import register_in_browser
from tidings.app import create_app
from webapp.settings import Settings, load_settings

EXPECTED_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": EXPECTED_CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}
HSTS = "max-age=31536000; includeSubDomains"


def assert_security_headers(response: httpx.Response, what: str, *, hsts: bool = False) -> None:
    served = {name: response.headers.get(name) for name in SECURITY_HEADERS}
    assert served == SECURITY_HEADERS, f"{what}: {served}"
    assert response.headers.get("strict-transport-security") == (HSTS if hsts else None), what


async def test_every_kind_of_answer_carries_the_security_headers(client: AsyncTestClient[Any]) -> None:
    _, token = await register(client)
    event = await create_event(client, token)
    answers = {
        "a page": await client.get("/"),
        "the login page": await client.get("/login"),
        "an event page": await client.get(f"/events/{event['id']}"),
        "a redirect": await client.get("/bookings"),
        "the JSON API": await client.get("/api/v1/events"),
        "an API error": await client.get("/api/v1/me"),
        "a static file": await client.get("/static/css/app.css"),
        "a vendored script": await client.get("/static/vendor/htmx-4.0.1.min.js"),
        "a page that does not exist": await client.get("/no-such-page"),
        "an API route that does not exist": await client.get("/api/v1/no-such-thing"),
        "a method not allowed": await client.delete("/"),
        "a refused form (CSRF)": await client.post("/login", data={"email": "a@b.c", "password": "x"}),
        "the health check": await client.get("/healthz"),
        "the OpenAPI UI": await client.get("/schema"),
        "the OpenAPI document": await client.get("/schema/openapi.json"),
    }
    for what, response in answers.items():
        assert response.status_code < 500, f"{what}: {response.status_code}"
        assert_security_headers(response, what)
    assert answers["a redirect"].status_code in (302, 303)
    assert answers["a page that does not exist"].status_code == 404
    assert answers["a refused form (CSRF)"].status_code == 403


async def test_strict_transport_security_only_in_production(settings: Settings) -> None:
    production = load_settings(
        {
            "TIDINGS_ENV": "production",
            "DATABASE_URL": settings.database_url,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "LOG_LEVEL": "WARNING",
        }
    )
    async with AsyncTestClient(create_app(production), base_url="https://tidings.example") as client:
        for path in ("/", "/api/v1/events", "/static/css/app.css", "/no-such-page"):
            assert_security_headers(await client.get(path), path, hsts=True)


async def test_a_stream_carries_the_security_headers(in_process_server: str) -> None:
    async with httpx.AsyncClient(base_url=in_process_server, timeout=10) as http:
        _, token = await register(http)
        async with http.stream("GET", "/api/v1/notifications/stream", headers=bearer(token)) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert_security_headers(stream, "the API stream")


# --- methods ----------------------------------------------------------------------------------


def allowed(response: httpx.Response) -> set[str]:
    return {method.strip() for method in response.headers.get("allow", "").split(",") if method.strip()}


async def test_method_not_allowed_says_which_methods_are(client: AsyncTestClient[Any]) -> None:
    _, token = await register(client)
    event = await create_event(client, token)
    cases = [
        ("DELETE", "/", {"GET", "HEAD"}),
        ("POST", "/healthz", {"GET", "HEAD"}),
        ("PUT", "/api/v1/events", {"GET", "HEAD", "POST"}),
        ("DELETE", f"/api/v1/events/{event['id']}", {"GET", "HEAD", "PATCH"}),
        ("GET", "/logout", {"POST"}),
        ("PATCH", "/notifications/read_all", {"POST"}),
    ]
    for method, path, expected in cases:
        response = await client.request(method, path, headers=bearer(token))
        assert response.status_code == 405, (method, path, response.status_code)
        assert allowed(response) - {"OPTIONS"} == expected, (method, path, response.headers.get("allow"))
        if path.startswith("/api/"):
            assert response.json()["error"]["code"] == "method_not_allowed"


async def test_head_answers_like_get_without_a_body(client: AsyncTestClient[Any]) -> None:
    organizer, token = await register(client)
    event = await create_event(client, token)
    await register_in_browser(client, "head@example.com")  # the client's cookie now signs pages in
    paths = [
        ("/", {}),
        ("/login", {}),
        (f"/events/{event['id']}", {}),
        ("/notifications", {}),
        ("/bookings", {}),
        ("/healthz", {}),
        ("/static/css/app.css", {}),
        ("/schema", {}),
        ("/schema/openapi.json", {}),
        ("/api/v1/events", bearer(token)),
        (f"/api/v1/events/{event['id']}", bearer(token)),
        ("/api/v1/me", bearer(token)),
        ("/api/v1/notifications/unread_count", bearer(token)),
    ]
    for path, headers in paths:
        got = await client.get(path, headers=headers)
        head = await client.head(path, headers=headers)
        assert got.status_code == 200, (path, got.status_code)
        assert head.status_code == 200, (path, head.status_code)
        assert head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"], path
        assert int(head.headers["content-length"]) == len(got.content), path
        assert_security_headers(head, f"HEAD {path}")
    # Not found and not allowed stay what they are for GET.
    assert (await client.head("/no-such-page")).status_code == 404
    assert (await client.head("/api/v1/events/999999", headers=bearer(token))).status_code == 404
    assert (await client.head("/logout")).status_code == 405
    assert organizer["id"]


async def test_head_on_a_stream_answers_headers_only_and_holds_no_stream_open(
    in_process_server: str, settings: Settings
) -> None:
    """A stream answers HEAD with its headers and ends at once: the stream it would have been is not
    kept open (more HEADs than the per-user stream cap still leave room for a real stream)."""
    async with httpx.AsyncClient(base_url=in_process_server, timeout=5) as http:
        _, token = await register(http)
        for _ in range(settings.stream_max_connections_per_user + 2):
            head = await http.head("/api/v1/notifications/stream", headers=bearer(token))
            assert head.status_code == 200
            assert head.headers["content-type"].startswith("text/event-stream")
            assert head.content == b""
        await asyncio.sleep(0.2)  # the server lets go of each HEAD's stream as its answer completes
        async with http.stream("GET", "/api/v1/notifications/stream", headers=bearer(token)) as stream:
            assert stream.status_code == 200


# --- the OpenAPI UI -----------------------------------------------------------------------------


class Assets(HTMLParser):
    """Every URL a page loads (scripts, styles, icons, images) and the text of its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self.inline_styles = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name):
                self.urls.append(str(values[name]))
        if tag == "script" and not values.get("src"):
            self._in_script = True
            self.inline_scripts.append("")
        if tag == "style" or "style" in values or any(name.startswith("on") for name in values):
            self.inline_styles += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline_scripts[-1] += data


async def test_the_openapi_ui_loads_everything_from_the_app_itself(client: AsyncTestClient[Any]) -> None:
    page = await client.get("/schema")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = Assets()
    assets.feed(page.text)
    assert not re.search(r"https?://|//[a-z]", page.text, re.IGNORECASE), "the UI page names another origin"
    assert assets.inline_scripts == [], "the UI page has inline script (the CSP refuses it)"
    assert assets.inline_styles == 0, "the UI page has inline styles or event handlers"
    scripts = [url for url in assets.urls if url.endswith(".js")]
    styles = [url for url in assets.urls if url.endswith(".css")]
    assert any("swagger-ui-bundle" in url for url in scripts), assets.urls
    assert styles, assets.urls
    for url in assets.urls:
        assert url.startswith("/static/"), url
        answer = await client.get(url)
        assert answer.status_code == 200, url
        assert len(answer.content) > 0, url
    # The document the UI renders is served beside it.
    document = await client.get("/schema/openapi.json")
    assert document.status_code == 200 and document.json()["info"]["title"] == "Tidings API"
