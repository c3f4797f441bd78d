"""Who is calling: the user a verified credential names.

A verified access token is proof enough of who is calling, so the auth middleware reads no row
for it: most requests (the API, the streams) need nothing of the user but the id, and reading the
row on each of them was a third of an API read's cost. Services that need only the id take a
`Caller`; what a request shows or checks of the user (a page's header, the admin guard, the
profile) is read where it is needed, once per request (webapp.http.signed_in_user). Nothing
about a user is cached, so a change to the row shows on the next request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Caller(Protocol):
    """What every signed-in request has: the user's id (a `TokenHolder`, or the `User` row once
    read)."""

    @property
    def id(self) -> int: ...


@dataclass(frozen=True)
class TokenHolder:
    """The user an access token names, before (and unless) their row is read."""

    id: int
