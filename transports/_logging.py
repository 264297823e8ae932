"""What the drivers and faces log: the transcript at DEBUG, with AUTH payloads redacted.

Loggers (the library configures none of them; the application does):

* ``smtpclient.transcript`` -- DEBUG: every chunk written and read, as
  ``C: b'...'`` / ``S: b'...'``, with AUTH payloads replaced by
  ``<redacted AUTH payload: N bytes>`` (the engine's
  :class:`smtp_core.TranscriptRecorder` finds them), and long chunks (message
  content) cut to their first :data:`SHOWN` bytes plus a count.
* ``smtpclient.transport`` -- INFO: connections made, TLS established (version
  and cipher), connections lost.

The transcript costs CPU on every byte, so a driver only records when
``smtpclient.transcript`` is enabled for DEBUG as the connection is made.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

from smtp_core import Record, TranscriptRecorder

__all__ = ["SHOWN", "TranscriptLog", "chain", "log", "log_tls", "transcript_trace"]

transcript_log = logging.getLogger("smtpclient.transcript")
log = logging.getLogger("smtpclient.transport")

#: Bytes of a chunk shown in the log; the rest is counted.  Enough for any
#: command or reply line; a message's content is not worth megabytes of log.
SHOWN = 512


class TranscriptLog(TranscriptRecorder):
    """A trace callback that logs each record at DEBUG instead of keeping it.

    Args:
        logger: where the records go (default ``smtpclient.transcript``).
        peer: a name for the connection, put in front of every line, so that
            several sessions' lines can be told apart.
    """

    def __init__(self, logger: logging.Logger | None = None, peer: str = "") -> None:
        super().__init__()
        self.logger = logger or transcript_log
        self.prefix = f"{peer} " if peer else ""

    def _record(self, record: Record) -> None:
        data = record.data
        if isinstance(data, bytes) and len(data) > SHOWN:
            text = f"{data[:SHOWN]!r} (+{len(data) - SHOWN} bytes)"
        elif isinstance(data, bytes):
            text = repr(data)
        else:
            text = data.strip()
        self.logger.debug("%s%s: %s", self.prefix, record.direction, text)


def transcript_trace(peer: str = "") -> Callable[[str, bytes], None] | None:
    """A :class:`TranscriptLog` if ``smtpclient.transcript`` logs DEBUG now, else ``None``."""
    if transcript_log.isEnabledFor(logging.DEBUG):
        return TranscriptLog(peer=peer)
    return None


def chain(
    first: Callable[[str, bytes], None] | None, second: Callable[[str, bytes], None] | None
) -> Callable[[str, bytes], None] | None:
    """One trace callback calling both (either may be ``None``)."""
    if first is None or second is None:
        return first or second

    def both(direction: str, data: bytes) -> None:
        first(direction, data)
        second(direction, data)

    return both


def log_tls(tls: object, server_hostname: str | None) -> None:
    """Log at INFO the TLS version and cipher of ``tls``.

    ``tls``: a stream with an ``ssl_object``, or an ``ssl.SSLSocket``.
    """
    session = getattr(tls, "ssl_object", tls)
    if log.isEnabledFor(logging.INFO) and isinstance(session, (ssl.SSLObject, ssl.SSLSocket)):
        cipher = session.cipher() or ("?", "?", 0)
        log.info("TLS with %s: %s, %s", server_hostname, session.version(), cipher[0])
