"""Responses that stay open and write nothing: the Server-Sent Events streams.

A route handler marks itself with `opt={LONG_LIVED: True}`. The middlewares of pages and writes
(flash, the CSRF cookie, the retry of conflicting transactions) then stay out of its opening and
out of every message it sends, where each would be one more wrapper around `send` for the life
of the stream (issue 12: the cost of a stream opening and of a broadcast to thousands).
"""

LONG_LIVED = "long_lived"
