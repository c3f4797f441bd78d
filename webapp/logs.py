"""Logging: one configuration for every process (web, scheduler, workers).

- LOG_FORMAT=json (the production default) writes one JSON object per line; `text` (the
  development default) writes readable lines.
- Every line logged while a request is handled carries its request id (a sane `X-Request-ID`
  from the client or proxy, or one made up here; the response sends it back) and, once the
  request is authenticated, the user id. Every line of a job carries its Dramatiq message id.
- Secrets never reach a line: paths lose their query string (a `?token=` on the WebSocket
  handshake, `?last_event_id=`), and whatever looks like a token (a JWT, `token=...`,
  `password=...`, a `Bearer` credential, a cookie) is replaced by `[redacted]` in the final text.
"""

from __future__ import annotations

import itertools
import json
import logging
import logging.config
import os
import re
import secrets
import time
from contextvars import ContextVar
from typing import Any

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
user_id: ContextVar[int | None] = ContextVar("user_id", default=None)
message_id: ContextVar[str | None] = ContextVar("message_id", default=None)

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_CONTEXT = (("request_id", request_id), ("user_id", user_id), ("message_id", message_id))
_SECRETS = (
    re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*"),  # a JWT anywhere
    re.compile(r"(?i)\b(bearer)\s+[\w.~+/=-]+"),
)
_SECRET_FIELDS = re.compile(
    r"(?i)\b(password|passwd|token|access_token|refresh_token|secret|secret_key|cookie|set-cookie|authorization"
    r"|tidings_access|tidings_refresh|tidings_csrf|_csrf_token)(\"?'?\s*[=:]\s*\"?'?)([^\s&\"',;}]+)"
)
_QUERY = re.compile(r"(/[^\s?\"']*)\?[^\s\"']*")


class _FreshRequestIds:
    """32 hex characters: a random prefix per process and a counter. An id ties log lines
    together and need not be secret, only unique; a uuid4 per request read the system's random
    source each time, a sixth of a liveness probe's CPU (issue 12). A forked process draws a
    prefix of its own. An id tells which process answered and how many it had answered; a
    client could guess the next ids and send them itself, which mixes nothing but log lines."""

    def __init__(self) -> None:
        self.renew()

    def renew(self) -> None:
        self.prefix = secrets.token_hex(8)
        self.counter = itertools.count()

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):016x}"


_fresh_request_ids = _FreshRequestIds()
os.register_at_fork(after_in_child=_fresh_request_ids.renew)


def new_request_id(sent: str | None) -> str:
    """The client's (or proxy's) X-Request-ID when it is short and plain, else a fresh one."""
    if sent and _SANE_REQUEST_ID.fullmatch(sent):
        return sent
    return _fresh_request_ids.next()


def bind_user(user: int | None) -> None:
    """The authenticated user of the request in progress (logged on its later lines)."""
    user_id.set(user)


def redact(text: str) -> str:
    text = _QUERY.sub(r"\1", text)
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: f"{m.group(1)} [redacted]" if m.groups() else "[redacted]", text)
    return _SECRET_FIELDS.sub(r"\1\2[redacted]", text)


class StripQueryString(logging.Filter):
    """Cuts the query string off every path in a log line's arguments (uvicorn logs HTTP
    requests on `uvicorn.access` and WebSocket handshakes on `uvicorn.error`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_without_query(arg) for arg in record.args)
        return True


def _without_query(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("/") and "?" in value:
        return value.split("?", 1)[0]
    return value


class Redact(StripQueryString):
    """Strips query strings, then redacts secrets from the finished message and traceback, and
    adds the request, user and message ids of the context the line was logged in."""

    def filter(self, record: logging.LogRecord) -> bool:
        super().filter(record)
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        for name, variable in _CONTEXT:
            if not hasattr(record, name):
                setattr(record, name, variable.get())
        return True


class JsonFormatter(logging.Formatter):
    converter = time.gmtime  # type: ignore[assignment]  # UTC, as the trailing Z says

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, _ in _CONTEXT:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - the logging API's name
        context = " ".join(
            f"{label}={value}"
            for label, value in (
                ("req", getattr(record, "request_id", None)),
                ("user", getattr(record, "user_id", None)),
                ("msg", getattr(record, "message_id", None)),
            )
            if value is not None
        )
        text = super().formatMessage(record)
        return f"{text} [{context}]" if context else text


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def log_config(level: str, log_format: str = "text") -> dict[str, Any]:
    """dictConfig for uvicorn and the root logger: every handler redacts and adds the ids."""
    factory = "webapp.logs.JsonFormatter" if log_format == "json" else "webapp.logs.TextFormatter"
    # The libraries' own bookkeeping (a line per scheduler run, the job loop starting) is noise
    # at INFO; it shows with LOG_LEVEL=DEBUG. Their warnings and errors always show.
    chatty = level if level == "DEBUG" else "WARNING"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": Redact}},
        "formatters": {"default": {"()": factory}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["redact"],
                "stream": "ext://sys.stderr",
            },
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["redact"],
                "stream": "ext://sys.stdout",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": ["access"], "level": level, "propagate": False},
            "apscheduler": {"level": chatty},
            "dramatiq.middleware": {"level": chatty},
        },
        "root": {"handlers": ["default"], "level": level},
    }


def uvicorn_log_config(level: str, log_format: str = "text") -> dict[str, Any]:
    return log_config(level, log_format)


def configure_logging(level: str, log_format: str) -> None:
    logging.config.dictConfig(log_config(level, log_format))


def adopt_handlers(log_format: str) -> None:
    """Processes whose logging someone else set up (Dramatiq's worker CLI): keep their handlers,
    with this module's format, redaction and ids."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter(log_format))
        handler.addFilter(Redact())
