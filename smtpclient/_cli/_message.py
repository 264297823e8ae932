"""The message the ``smtpclient`` command sends: ``--data`` as it is, or one it builds."""

from __future__ import annotations

import email.message
import email.policy
import email.utils
import mimetypes

from ._args import _Options
from ._common import _Usage

__all__ = ["DEFAULT_BODY", "_MessageSource"]

DEFAULT_BODY = "This is a test message sent by smtpclient.\n"


# -- the message ---------------------------------------------------------------------------


class _MessageSource:
    """The message bytes for each transaction of the session.

    A built message gets a fresh Message-ID each time (unless ``--header``
    gave one); ``--data`` is sent as it is every time.
    """

    def __init__(self, opts: _Options) -> None:
        self._fixed: bytes | None = opts.data
        self._rest = b""
        self._own_id = False
        # The Message-ID's domain: the sender's, else the EHLO name, else a
        # reserved one (never a DNS lookup, as make_msgid's default does).
        self._domain = "smtpclient.invalid"
        for name in (opts.sender or "", f"@{opts.ehlo or ''}"):
            domain = name.rpartition("@")[2]
            if "." in domain and domain.isascii() and "[" not in domain:
                self._domain = domain
                break
        if opts.data is None:
            self._rest, self._own_id = _build_message(opts)

    def message(self) -> bytes:
        """The bytes of the next message."""
        if self._fixed is not None:
            return self._fixed
        if self._own_id:
            return self._rest
        msgid = email.utils.make_msgid("smtpclient", domain=self._domain)
        return f"Message-ID: {msgid}\r\n".encode("ascii") + self._rest


def _build_message(opts: _Options) -> tuple[bytes, bool]:
    """The built message without its Message-ID, and whether ``--header`` gave one."""
    date = email.utils.formatdate(localtime=True)
    defaults = [("Date", date)]
    if opts.sender:
        defaults.append(("From", opts.sender))
    if opts.recipients:
        defaults.append(("To", ", ".join(opts.recipients)))
    defaults.append(("Subject", opts.subject if opts.subject is not None else f"test {date}"))
    given = {name.lower() for name, _ in opts.headers}
    msg = email.message.EmailMessage()
    try:
        for name, value in [*(h for h in defaults if h[0].lower() not in given), *opts.headers]:
            msg[name] = value
        body = DEFAULT_BODY if opts.body is None else opts.body
        if not body.endswith("\n"):
            body += "\n"
        cte = None if body.isascii() else "quoted-printable"
        msg.set_content(body, cte=cte)
        for path in opts.attachments:
            kind, encoding = mimetypes.guess_type(path.name)
            if kind is None or encoding is not None:
                kind = "application/octet-stream"
            maintype, _, subtype = kind.partition("/")
            msg.add_attachment(
                path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name
            )
        utf8 = not all(a.isascii() for a in [opts.sender or "", *opts.recipients])
        data = msg.as_bytes(policy=email.policy.SMTPUTF8 if utf8 else email.policy.SMTP)
    except (ValueError, TypeError, OSError) as exc:
        raise _Usage(f"cannot build the message: {exc}") from None
    return data, "message-id" in given
