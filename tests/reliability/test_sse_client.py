"""The suite's own SSE client: the parser and the chunked decoder, on hand-made byte streams."""

from __future__ import annotations

from tests.reliability.sse import ChunkedDecoder, Comment, Event, SSEParser


def parse_in_pieces(data: bytes, size: int) -> list[Event | Comment]:
    parser = SSEParser()
    items: list[Event | Comment] = []
    for i in range(0, len(data), size):
        items += parser.feed(data[i : i + size])
    return items + parser.feed_eof()


STREAM = (
    b"\xef\xbb\xbf: connected\r\nretry: 2000\r\n\r\n"
    b'id: 5\r\nevent: new_notification\r\ndata: {"seq":5}\r\n\r\n'
    b"event: notification_count\ndata: a\ndata: b\n\n"
    b": keep-alive\r\r"
    b"id: 6\revent: reset\rdata:x\r\r"
    b"data: unterminated"
)
EXPECTED = [
    Comment("connected"),
    Event("new_notification", '{"seq":5}', "5", "5"),
    Event("notification_count", "a\nb", None, "5"),  # the last event id carries over
    Comment("keep-alive"),
    Event("reset", "x", "6", "6"),
]


def test_parser_reads_every_line_ending_whole_or_split_across_reads():
    for size in (1, 2, 3, 7, len(STREAM)):
        assert parse_in_pieces(STREAM, size) == EXPECTED, size


def test_parser_keeps_multibyte_characters_split_across_reads():
    data = "data: Müller – ☕\n\n".encode()
    assert parse_in_pieces(data, 1) == [Event("message", "Müller – ☕", None, "")]


def test_chunked_decoder_reassembles_the_body_and_sees_its_end():
    body = b"hello, chunked world" * 5
    encoded = b"".join(
        f"{len(body[i : i + 13]):x}\r\n".encode() + body[i : i + 13] + b"\r\n" for i in range(0, len(body), 13)
    )
    encoded += b"0\r\n\r\n"
    for size in (1, 5, len(encoded)):
        decoder = ChunkedDecoder()
        out = b"".join(decoder.feed(encoded[i : i + size]) for i in range(0, len(encoded), size))
        assert out == body and decoder.done, size
