"""Tidings background jobs (Dramatiq). `dramatiq jobs` imports this package, which imports every
actor module so the worker knows them all. Each actor module imports `jobs.broker` first, so the
broker is configured before any actor is declared, whatever imports it first."""

from jobs import bookings, dispatch, email, fanout, groups, push, reminders  # noqa: F401
