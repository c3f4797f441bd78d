"""The per-process list of ended sessions: a `session_ended` ring refuses the session and closes
its streams; entries are forgotten once every token of the session has expired; a stream that
subscribes just after its session ended is closed at once; an abandoned one stops watching."""

from __future__ import annotations

import asyncio

from webapp.realtime.doorbell import SESSION_CLOSED, Hub
from webapp.realtime.ended_sessions import CLOCK_SKEW_SECONDS, EndedSessions


async def test_a_session_ended_ring_closes_only_that_sessions_streams():
    hub = Hub(sessions=EndedSessions(token_lifetime_seconds=900))
    mine = hub.subscribe(7, 8, "mine")
    other_device = hub.subscribe(7, 8, "other")
    mine.started = other_device.started = True
    assert not hub.sessions.is_ended("mine")
    hub.deliver({"type": "session_ended", "user": 7, "session": "mine"})
    assert hub.sessions.is_ended("mine") and not hub.sessions.is_ended("other")
    assert mine.pending == [SESSION_CLOSED]
    assert other_device.pending == []


async def test_a_stream_opened_after_its_session_ended_is_closed_at_once():
    hub = Hub(sessions=EndedSessions())
    hub.sessions.end("gone")
    late = hub.subscribe(3, 8, "gone")
    await asyncio.sleep(0)  # the callback runs on the loop
    assert late.pending == [SESSION_CLOSED]


async def test_entries_are_forgotten_once_every_token_of_the_session_has_expired():
    sessions = EndedSessions(token_lifetime_seconds=900)
    remember = 900 + CLOCK_SKEW_SECONDS
    sessions.record([("recent", remember - 5), ("old", remember + 5)])
    assert sessions.is_ended("recent") and not sessions.is_ended("old")
    assert len(sessions) == 1


async def test_a_closed_subscription_stops_watching_its_session():
    hub = Hub(unstarted_grace=0.01, sessions=EndedSessions())
    abandoned = hub.subscribe(5, 8, "s")  # never started: the hub drops it after the grace
    await asyncio.sleep(0.05)
    assert hub.total() == 0 and abandoned.unwatch_session is None
    hub.sessions.end("s")
    assert abandoned.pending == []


async def test_the_hub_keeps_the_list_it_was_given_with_its_token_lifetime():
    given = EndedSessions(token_lifetime_seconds=3)  # empty, as every process starts
    assert Hub(sessions=given).sessions is given
    assert given.remember_seconds == 3 + CLOCK_SKEW_SECONDS
