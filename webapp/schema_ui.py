"""The OpenAPI UI at /schema: Swagger UI from files vendored under static/vendor (no CDN), started
by a script file, since the Content-Security-Policy allows no inline script or style."""

from __future__ import annotations

from html import escape
from typing import Any

from litestar import Request
from litestar.openapi.plugins import SwaggerRenderPlugin

SWAGGER_UI_VERSION = "5.35.0"  # npm swagger-ui-dist, vendored under static/vendor/swagger-ui-<version>/
ASSETS = f"/static/vendor/swagger-ui-{SWAGGER_UI_VERSION}"


class VendoredSwaggerUI(SwaggerRenderPlugin):
    def __init__(self) -> None:
        super().__init__(
            version=SWAGGER_UI_VERSION,
            js_url=f"{ASSETS}/swagger-ui-bundle.js",
            css_url=f"{ASSETS}/swagger-ui.css",
            favicon='<link rel="icon" href="/static/icons/favicon.svg" type="image/svg+xml">',
            style='<link rel="stylesheet" href="/static/css/schema.css">',
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        csrf = request.app.csrf_config
        # The page's script adds the CSRF header from its cookie, as Litestar's own page does, so
        # "Try it out" works for a browser signed in by cookie.
        data = {
            "data-spec-url": self.get_openapi_json_route(request),
            "data-csrf-cookie": csrf.cookie_name if csrf and not csrf.cookie_httponly else "",
            "data-csrf-header": csrf.header_name if csrf else "",
        }
        attributes = " ".join(f'{name}="{escape(value)}"' for name, value in data.items())
        title = escape(str(openapi_schema["info"]["title"]))
        return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  {self.favicon}
  <link rel="stylesheet" href="{self.css_url}">
  {self.style}
  <script src="{self.js_url}" defer></script>
  <script src="/static/js/schema.js" {attributes} defer></script>
</head>
<body>
  <div id="swagger-container"></div>
</body>
</html>
""".encode()
