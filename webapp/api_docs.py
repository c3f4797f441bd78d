"""What the OpenAPI description says about `/api/v1` routes beyond their signatures.

Errors: one schema, the one `webapp.http.error_json` writes, and one helper each route lists the
error statuses it can answer with (`responses=api_errors(401, 404)`).

Every route can answer 400 (a malformed request: bad JSON, a parameter of the wrong type or out
of range, a NUL character) and 503 (the database is busy or down); a route names the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Operation, RequestBody

ALWAYS = (400, 503)


class ErrorDetail(msgspec.Struct):
    code: str
    message: str
    # Validation errors: what is wrong with each field, by the field's name.
    fields: dict[str, str] | msgspec.UnsetType = msgspec.UNSET


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


def api_errors(*statuses: int) -> dict[int, ResponseSpec]:
    """The `responses=` of a route: the error statuses it can answer, with the error schema."""
    return {
        status: ResponseSpec(data_container=ErrorBody, description=HTTPStatus(status).phrase, generate_examples=False)
        for status in sorted({*ALWAYS, *statuses})
    }


@dataclass
class OptionalBody(Operation):
    """`operation_class=` of a route whose JSON body may be left out (Litestar 2 always marks
    a request body required)."""

    def __post_init__(self) -> None:
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = False
