"""What the OpenAPI description at /schema says about /api/v1, declared in one place.

Every API route handler documents itself with one line, e.g.
`@post("/groups", status_code=201, **api_doc("Create a group", 400, 403, 422, auth=True))`:
a summary, the error statuses it can answer (each with the real error body, `ErrorBody`), and
whether it needs the Bearer token (which also means it can answer 401). Tags come from the
controller (`tags = ["events"]`). Page controllers say `include_in_schema = False`.
`tests/integration/test_openapi_contract.py` checks the result against a live server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Components, OpenAPIFormat, Operation, Reference, RequestBody, SecurityScheme
from litestar.params import KwargDefinition

# A time in the JSON API: ISO 8601 / RFC 3339 with its UTC offset, as datetime.isoformat() writes it.
Timestamp = Annotated[str, KwargDefinition(format=OpenAPIFormat.DATE_TIME)]

BEARER_SCHEME = "BearerToken"
BEARER: list[dict[str, list[str]]] = [{BEARER_SCHEME: []}]
COMPONENTS = Components(
    security_schemes={
        BEARER_SCHEME: SecurityScheme(
            type="http",
            scheme="bearer",
            bearer_format="JWT",
            description="The `token` from POST /api/v1/auth/login or /api/v1/auth/register.",
        )
    }
)


class _ErrorFields(TypedDict, total=False):
    # Per-field messages of a validation_error, e.g. {"seats": "must be a whole number"}. Only
    # `code` and `message` are always there. (A base with total=False rather than NotRequired,
    # which this module's postponed annotations would hide from TypedDict.)
    fields: dict[str, str]


class ErrorDetail(_ErrorFields):
    code: str
    message: str


class ErrorBody(TypedDict):
    """Every error the API answers: `{"error": {"code", "message"}}`."""

    error: ErrorDetail


ERROR_DESCRIPTIONS = {
    400: "bad_request: a malformed request: the body is not JSON or is nested too deeply, or a NUL character "
    "in the path, query or form.",
    401: "unauthorized: no token, or an expired, revoked or invalid one.",
    402: "The payment was declined; the body also carries the booking.",
    403: "forbidden: not allowed for this account, or a change sent with session cookies but without the CSRF token.",
    404: "not_found: no such object, or one that belongs to another user.",
    409: "The object's state does not allow this (the code says why, e.g. event_full).",
    413: "The body is larger than 128 KiB.",
    422: "validation_error: a field or parameter is invalid; `fields` names each one with its message.",
    429: "rate_limited: too many requests; try again after the Retry-After header's seconds.",
    503: "service_unavailable: the database is busy or down; try again after the Retry-After header's seconds.",
}
# Any request can be malformed (400), and any can meet a database that is down (503).
ALWAYS = (400, 503)


def error_responses(*statuses: int, special: dict[int, Any] | None = None) -> dict[int, ResponseSpec]:
    """The documented error answers of one route. `special` gives a status a body of its own
    (still holding `error`), e.g. a declined payment that also returns the booking."""
    special = special or {}
    return {
        status: ResponseSpec(
            data_container=special.get(status, ErrorBody),
            description=ERROR_DESCRIPTIONS[status],
            generate_examples=False,
        )
        for status in sorted(statuses)
    }


@dataclass
class ApiOperation(Operation):
    """An operation of /api/v1.

    Litestar documents a 400 with its own `ValidationException` body for every operation that
    has parameters. This API answers validation failures with 422 in the error shape (see
    webapp.http), so that generated 400 would be a lie: it is dropped, and a route whose body
    can be malformed JSON declares its 400 itself.
    """

    def __post_init__(self) -> None:
        generated = (self.responses or {}).get("400")
        if generated is not None and not _refers_to_component(generated):
            del self.responses["400"]  # type: ignore[union-attr]
        # A 204 has no body (RFC 9110 §15.3.5); Litestar documents a handler that returns a
        # Response[None] (to set cookies) as a JSON null.
        no_content = (self.responses or {}).get("204")
        if no_content is not None:
            no_content.content = None  # type: ignore[union-attr]


def _refers_to_component(response: Any) -> bool:
    content = getattr(response, "content", None) or {}
    return all(isinstance(media.schema, Reference) for media in content.values()) and bool(content)


def _event_stream_operation(events: list[str]) -> type[Operation]:
    """An operation answering Server-Sent Events, with its event names machine-readable."""

    @dataclass
    class EventStreamOperation(ApiOperation):
        x_sse_events: list[str] = field(default_factory=lambda: list(events), metadata={"alias": "x-sse-events"})

    return EventStreamOperation


def _event_stream_response(events: dict[str, str]) -> ResponseSpec:
    lines = "\n".join(f"- `{name}`: {carries}" for name, carries in events.items())
    return ResponseSpec(
        data_container=str,
        media_type="text/event-stream",
        generate_examples=False,
        description=f"Server-Sent Events (`event:` name, JSON `data:`), and comment lines as heartbeats:\n{lines}",
    )


def api_doc(
    summary: str,
    *errors: int,
    auth: bool = False,
    special: dict[int, Any] | None = None,
    events: dict[str, str] | None = None,
    optional_body: bool = False,
) -> dict[str, Any]:
    """The OpenAPI keyword arguments of one /api/v1 route handler (see the module's docstring).

    `auth`: needs the Bearer token (and so can answer 401). `events`: the handler answers
    Server-Sent Events with these names (name: what its data carries). `optional_body`: its JSON
    body may be left out."""
    statuses = set(errors) | set(ALWAYS) | ({401} if auth else set())
    responses = error_responses(*statuses, special=special)
    operation: type[Operation] = OptionalBody if optional_body else ApiOperation
    if events:
        responses[200] = _event_stream_response(events)
        operation = _event_stream_operation(list(events))
    doc: dict[str, Any] = {"summary": summary, "responses": responses, "operation_class": operation}
    if auth:
        doc["security"] = BEARER
    return doc


@dataclass
class OptionalBody(ApiOperation):
    """`operation_class=` of a route whose JSON body may be left out (Litestar 2 always marks
    a request body required)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = False
