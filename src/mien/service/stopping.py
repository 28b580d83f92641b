"""Whether this server process is stopping (``mien serve`` got SIGTERM or Ctrl+C).

Long-lived answers (the Server-Sent Events streams of ``/v1/review/events`` and
``/v1/jobs/{id}/events``) end at their next poll once it is set, so open review pages and
followers of a stream job do not hold a shutdown; clients reconnect to the next server and
resume with ``Last-Event-ID``. Set by :mod:`mien.cli.serve` only: several apps run in one
test process, and none of them is stopping."""

from __future__ import annotations

import threading

#: Set once the process has been told to stop; never cleared.
STOPPING = threading.Event()
