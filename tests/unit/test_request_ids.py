"""Made-up request ids (webapp.logs.new_request_id): 32 hex characters like before, never the same
twice in a process, and a forked process (a pre-forking server's worker) makes ids of its own."""

from __future__ import annotations

import os
import re

from webapp.logs import new_request_id

HEX_32 = re.compile(r"[0-9a-f]{32}")


def test_a_sane_sent_id_is_kept_and_others_are_replaced() -> None:
    assert new_request_id("req-abc.123") == "req-abc.123"
    for bad in (None, "", "no good\tid", "x" * 65):
        assert HEX_32.fullmatch(new_request_id(bad))


def test_made_up_ids_are_unique_in_a_process() -> None:
    ids = [new_request_id(None) for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(HEX_32.fullmatch(made_up) for made_up in ids)


def test_a_forked_process_makes_ids_of_its_own() -> None:
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child: report its next ids and leave without running any cleanup
        try:
            os.write(writer, " ".join(new_request_id(None) for _ in range(100)).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        childs = set(pipe.read().split())
    os.waitpid(child, 0)
    parents = {new_request_id(None) for _ in range(100)}
    assert len(childs) == 100
    assert not childs & parents, "a forked process repeated its parent's ids"
