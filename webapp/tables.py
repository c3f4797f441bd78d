"""Every table of the app, registered on Base.metadata: Alembic and the tests need them all,
and a model module imports only the models it refers to."""

from __future__ import annotations


def import_all_models() -> None:
    """Registers every table on Base.metadata (for Alembic and tests)."""
    from webapp.auth import models as _auth  # noqa: F401
    from webapp.bookings import models as _bookings  # noqa: F401
    from webapp.bookings import payment_models as _payments  # noqa: F401
    from webapp.bookings import reminder_models as _reminders  # noqa: F401
    from webapp.deliveries import models as _deliveries  # noqa: F401
    from webapp.events import models as _events  # noqa: F401
    from webapp.groups import models as _groups  # noqa: F401
    from webapp.notifications import models as _notifications  # noqa: F401
    from webapp.notifications import offsite_models as _offsite  # noqa: F401
    from webapp.ops import models as _ops  # noqa: F401
    from webapp.outbox import models as _outbox  # noqa: F401
    from webapp.preferences import models as _preferences  # noqa: F401
    from webapp.push import models as _push  # noqa: F401
    from webapp.reviews import models as _reviews  # noqa: F401
