"""The OpenAPI description served at /schema tells a client the truth about /api/v1.

The schema is read from a live server. Where a rule can be checked against the server itself
(who gets a 401, what the stream sends), the test asks the server instead of trusting the schema.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from webapp.auth.middleware import ACCESS_COOKIE
from webapp.notifications.stream import StreamEvent
from webapp.web.sse import api_encoder

METHODS = ("get", "put", "post", "patch", "delete")
UNSAFE = {"post", "put", "patch", "delete"}
DOCUMENTED_ERRORS = {"400", "401", "402", "403", "404", "409", "413", "422", "429", "503"}


@pytest.fixture
async def schema(in_process_server: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=in_process_server) as http:
        response = await http.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].removeprefix("#/components/schemas/")
        node = schema["components"]["schemas"][name]
    return node


def is_real_schema(schema: dict[str, Any], node: dict[str, Any]) -> bool:
    """Something a client can generate a type from: not `{}` and not a bare free-form object."""
    node = resolve(schema, node)
    if node.get("type") == "array":
        return is_real_schema(schema, node.get("items", {}))
    if node.get("type") == "string":
        return True
    return bool(node.get("properties"))


def error_detail_component(schema: dict[str, Any], response: dict[str, Any]) -> dict[str, Any] | None:
    """The `error` object a 4xx body carries, when the body is documented as a component holding one."""
    content = response.get("content", {}).get("application/json")
    if not content or "$ref" not in content["schema"]:
        return None
    body = resolve(schema, content["schema"])
    error = body.get("properties", {}).get("error", {})
    if "$ref" not in error or "error" not in body.get("required", []):
        return None
    return resolve(schema, error)


async def test_the_schema_lists_only_api_operations_and_no_html(schema):
    ops = operations(schema)
    assert ops, "no operations documented"
    outside = [f"{method.upper()} {path}" for path, method, _ in ops if not path.startswith("/api/v1/")]
    assert not outside, f"non-API routes in the schema: {outside}"
    html = [
        f"{method.upper()} {path}"
        for path, method, op in ops
        for response in op["responses"].values()
        if "text/html" in response.get("content", {})
    ]
    assert not html, f"HTML responses in the schema: {html}"


async def test_every_operation_has_a_tag_a_summary_and_a_typed_success_response(schema):
    problems = []
    for path, method, op in operations(schema):
        name = f"{method.upper()} {path}"
        if not op.get("tags"):
            problems.append(f"{name}: no tag")
        # Litestar's fallback summary is the handler's name in CamelCase ("ListEvents"): not a summary.
        if not re.search(r"\s", op.get("summary", "")):
            problems.append(f"{name}: no summary ({op.get('summary')!r})")
        successes = {code: r for code, r in op["responses"].items() if code.startswith("2")}
        if len(successes) != 1:
            problems.append(f"{name}: {len(successes)} success responses")
            continue
        [(code, success)] = successes.items()
        content = success.get("content") or {}
        if code == "204":
            if content:
                problems.append(f"{name}: a 204 documented with a body: {content}")
            continue
        if not content or not all(is_real_schema(schema, media["schema"]) for media in content.values()):
            problems.append(f"{name}: success response has no real schema: {content}")
    assert not problems, "\n".join(problems)


async def test_every_error_response_is_the_error_shape_and_every_possible_error_is_declared(schema):
    problems = []
    for path, method, op in operations(schema):
        name = f"{method.upper()} {path}"
        declared = {code for code in op["responses"] if code.startswith(("4", "5"))}
        if extra := declared - DOCUMENTED_ERRORS:
            problems.append(f"{name}: undocumented kind of error status {sorted(extra)}")
        for code in sorted(declared):
            detail = error_detail_component(schema, op["responses"][code])
            if detail is None or not {"code", "message"} <= set(detail.get("required", [])):
                problems.append(f"{name}: {code} is not the error shape: {op['responses'][code]}")
        needed = {"400", "503"}  # any request can be malformed (a NUL in the path), any can meet a database down
        parameters = op.get("parameters", [])
        if parameters or "requestBody" in op:
            needed.add("422")  # a parameter or a field that fails validation
        if "requestBody" in op:
            needed.add("413")  # a body over the size limit
        if any(p["in"] == "path" for p in parameters):
            needed.add("404")  # no such object, or another user's
        if op.get("security"):
            needed.add("401")
        if method in UNSAFE:
            needed.add("403")  # a change sent with session cookies but without the CSRF token
        if missing := needed - declared:
            problems.append(f"{name}: can answer {sorted(missing)} but does not declare it")
    assert not problems, "\n".join(problems)


async def test_the_error_shape_and_the_bearer_scheme_are_components(schema):
    components = schema["components"]
    schemes = components["securitySchemes"]
    assert len(schemes) == 1
    ((scheme_name, scheme),) = schemes.items()
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    secured = [op for _, _, op in operations(schema) if op.get("security")]
    assert secured
    assert all(op["security"] == [{scheme_name: []}] for op in secured)
    error_bodies = {
        code: error_detail_component(schema, response)
        for _, _, op in operations(schema)
        for code, response in op["responses"].items()
        if code.startswith("4")
    }
    assert error_bodies and all(error_bodies.values())
    # Only code and message are in every error; a schema requiring more would call real answers wrong.
    assert all(set(detail["required"]) == {"code", "message"} for detail in error_bodies.values())


async def test_security_declarations_match_what_an_anonymous_client_gets(schema, in_process_server):
    """Every operation declared as needing the Bearer token answers an anonymous request with 401,
    and every operation that answers an anonymous request with 401 declares it."""
    problems = []
    async with httpx.AsyncClient(base_url=in_process_server) as http:
        for path, method, op in operations(schema):
            url = re.sub(r"\{[^}]+\}", "1", path)
            response = await http.request(method.upper(), url, json={} if "requestBody" in op else None)
            name = f"{method.upper()} {path}"
            if op.get("security") and response.status_code != 401:
                problems.append(f"{name}: declares security, but anonymous got {response.status_code}")
            if response.status_code == 401 and "401" not in op["responses"]:
                problems.append(f"{name}: anonymous got 401, which is not declared")
            if response.status_code == 401 and not op.get("security"):
                problems.append(f"{name}: anonymous got 401, but no security is declared")
    assert not problems, "\n".join(problems)


async def test_a_change_with_session_cookies_and_no_csrf_token_is_a_declared_403(schema, in_process_server):
    problems = []
    async with httpx.AsyncClient(base_url=in_process_server, cookies={ACCESS_COOKIE: "any"}) as http:
        for path, method, op in operations(schema):
            if method not in UNSAFE:
                continue
            response = await http.request(method.upper(), re.sub(r"\{[^}]+\}", "1", path), json={})
            if response.status_code != 403 or "403" not in op["responses"]:
                problems.append(f"{method.upper()} {path}: {response.status_code}, declared {sorted(op['responses'])}")
    assert not problems, "\n".join(problems)


async def test_the_notification_stream_is_documented_as_server_sent_events_with_its_event_names(schema):
    op = schema["paths"]["/api/v1/notifications/stream"]["get"]
    content = op["responses"]["200"]["content"]
    assert list(content) == ["text/event-stream"]
    # The names the API encoder really sends, one per kind of stream event.
    kinds = ("notification", "count", "read", "archive", "reset")
    sent = {api_encoder(StreamEvent(kind, 1, {})).event for kind in kinds}
    assert None not in sent and len(sent) == len(kinds)
    documented = set(op.get("x-sse-events", []))
    assert documented == sent
    description = op["responses"]["200"]["description"] + op.get("description", "")
    assert all(name in description for name in sent)


async def test_times_are_documented_as_date_time(schema):
    """Every `*_at` field of every component (the API's naming for a time) is an RFC 3339
    date-time, so a generated client parses it as a time rather than as text."""
    untyped = []
    for name, component in schema["components"]["schemas"].items():
        for field, prop in component.get("properties", {}).items():
            if field.endswith("_at"):
                variants = prop.get("oneOf", [prop])
                strings = [v for v in variants if v.get("type") == "string"]
                if not strings or any(v.get("format") != "date-time" for v in strings):
                    untyped.append(f"{name}.{field}: {prop}")
    assert not untyped, "\n".join(untyped)
