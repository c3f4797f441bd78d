"""How the outbox hands work to Dramatiq: by actor name, so services need not import actors."""

from __future__ import annotations

from typing import Any

import dramatiq

from webapp.outbox.services import set_dispatcher


def send_by_name(actor_name: str, kwargs: dict[str, Any]) -> None:
    dramatiq.get_broker().get_actor(actor_name).send_with_options(kwargs=kwargs)


set_dispatcher(send_by_name)
