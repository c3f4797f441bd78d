"""Litestar's validation messages (msgspec's, really) in words a person understands.

"Expected `int`, got `str`" at `seats` becomes ("seats", "must be a whole number"); a missing
field is named itself ("venue", "is required"); the whole body is called "body". The HTTP layer
answers them as one 422 validation_error, like the services' own ValidationFailed.
"""

from __future__ import annotations

import re

from litestar.exceptions import ValidationException

from webapp.validation import NO_NUL_PATTERN

_TYPE_WORDS = {
    "int": "a whole number",
    "float": "a number",
    "str": "text",
    "bool": "true or false",
    "object": "a JSON object",
    "array": "a list",
    "datetime": "a date and time with a UTC offset, e.g. 2027-10-31T20:00:00+01:00",
    "null": "null",
}
_BOUNDS = {">=": "at least", "<=": "at most", ">": "greater than", "<": "less than"}
_EXPECTED_TYPE = re.compile(r"Expected `([\w |]+)`, got `\w+`")
_EXPECTED_BOUND = re.compile(r"Expected `(?:int|float)` (>=|<=|>|<) (-?[\d.]+)")
_EXPECTED_LENGTH = re.compile(r"Expected `(str|array|object)` of length (>=|<=) (\d+)")
_MISSING_FIELD = re.compile(r"Object missing required field `([^`]+)`")
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `([^`]+)`")


def field_error(key: str, message: str) -> tuple[str, str]:
    """The field one message is about, and the message in plain words."""
    key = "body" if key in ("", "data") else key.removeprefix("data.")
    parent = "" if key == "body" else f"{key}."
    if match := _MISSING_FIELD.fullmatch(message):
        return parent + match[1], "is required"
    if match := _UNKNOWN_FIELD.fullmatch(message):
        return parent + match[1], "is not a known field"
    if match := _EXPECTED_TYPE.fullmatch(message):
        kinds = [k.strip() for k in match[1].split("|") if k.strip() != "null"]
        return key, "must be " + " or ".join(_TYPE_WORDS.get(k, k) for k in kinds)
    if match := _EXPECTED_BOUND.fullmatch(message):
        return key, f"must be {_BOUNDS[match[1]]} {match[2]}"
    if match := _EXPECTED_LENGTH.fullmatch(message):
        unit = "characters" if match[1] == "str" else "items"
        return key, f"must be {_BOUNDS[match[2]]} {match[3]} {unit}"
    if repr(NO_NUL_PATTERN) in message:  # msgspec names the pattern; a person wants the reason
        return key, "must not contain NUL characters"
    if "datetime" in message:
        return key, "must be " + _TYPE_WORDS["datetime"]
    plain = message.replace("`", "")
    return key, plain[:1].lower() + plain[1:]


def validation_fields(exc: ValidationException) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            name, text = field_error(str(item.get("key") or ""), str(item.get("message") or "is invalid"))
            fields.setdefault(name, text)
    return fields
