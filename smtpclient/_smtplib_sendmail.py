"""The ``smtplib`` facade's mail sending: ``sendmail()`` and ``send_message()``.

:class:`SendmailMixin` makes every line of the transaction (smtplib's own) and
checks them all before the first byte goes out, then sends MAIL, RCPT and
DATA one by one as smtplib does, or through the engine's ``transaction``
procedure in one write when the server offers PIPELINING.  Either way the
replies become smtplib's results through the seam (``_smtplib_outcomes``, R6).
"""

from __future__ import annotations

import copy
import email.generator
import email.message
import email.utils
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from smtp_core import CommandLine, procedures

from ._errors import SMTPNotSupportedError
from ._smtplib_commands import CommandsMixin
from ._smtplib_helpers import _fix_eols
from ._smtplib_outcomes import (
    Refused,
    data_outcome,
    final_outcome,
    lmtp_outcome,
    mail_outcome,
    rcpt_outcome,
    recipients_outcome,
    reply_text,
    sendmail_outcome,
)

__all__ = ["SendmailMixin"]


class SendmailMixin(CommandsMixin):
    """smtplib's :meth:`sendmail` and :meth:`send_message`."""

    if TYPE_CHECKING:
        # Defined by SMTP itself (smtpclient._smtplib), where quoteaddr is looked up.
        def _mail_line(self, sender: str, options: Sequence[str]) -> str: ...
        def _rcpt_line(self, recip: str, options: Sequence[str]) -> str: ...

    # -- sending mail ------------------------------------------------------------------

    def sendmail(
        self,
        from_addr: str,
        to_addrs: str | Sequence[str],
        msg: str | bytes,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> dict[str, tuple[int, bytes]]:
        """Send one message; returns ``{recipient: (code, text)}`` for refused recipients.

        It returns only when the server accepted the message.  With
        PIPELINING, MAIL, every RCPT and DATA go out in one write.  Every line
        (addresses and options) is checked before the first byte goes out.

        Raises:
            SMTPHeloError, SMTPSenderRefused, SMTPRecipientsRefused (every
            recipient refused, or a 421 to a RCPT; for LMTP, also after the
            data), SMTPDataError, SMTPNotSupportedError, SMTPServerDisconnected
            (the server closed before its verdict on the message).
        """
        self.ehlo_or_helo_if_needed()
        if isinstance(msg, str):
            msg = _fix_eols(msg).encode("ascii")
        options: list[str] = []
        if self.does_esmtp:
            if self.has_extn("size"):
                options.append(f"size={len(msg)}")
            options.extend(mail_options)
        if isinstance(to_addrs, str):
            to_addrs = [to_addrs]
        mail_line = self._mail_line(from_addr, options)
        rcpt_lines = [self._rcpt_line(address, rcpt_options) for address in to_addrs]
        conn = self._engine()
        if to_addrs and self.does_esmtp and conn.extensions.pipelining:
            result = self._run(
                procedures.transaction(
                    conn,
                    CommandLine(mail_line),
                    [CommandLine(line, a) for line, a in zip(rcpt_lines, to_addrs, strict=True)],
                    msg or b"\r\n",  # as _content: smtplib's empty message is one line end
                )
            )
            if self._lmtp:
                self.lmtp_replies = {
                    address: (r.reply.code, reply_text(r.reply))
                    for address, r in zip(to_addrs, result.recipients, strict=True)
                    if r.rcpt_reply is not None and r.rcpt_reply.is_positive
                }
            return sendmail_outcome(
                result, from_addr, to_addrs, lmtp=self._lmtp, close=self.close, reset=self._rset
            )
        # One command at a time, in smtplib's order and with its resets.
        mail_outcome(self._reply_to(mail_line), from_addr, close=self.close, reset=self._rset)
        refused: Refused = {}
        for address, line in zip(to_addrs, rcpt_lines, strict=True):
            rcpt_outcome(refused, address, self._reply_to(line, address), close=self.close)
        recipients_outcome(refused, len(to_addrs), reset=self._rset)
        data_outcome(self._reply_to("data"), close=self.close)
        verdicts = self._content(msg)
        if self._lmtp:
            self.lmtp_replies = {address: self._reply_tuple(r) for address, r in verdicts}
            return lmtp_outcome(refused, verdicts, len(to_addrs), close=self.close)
        final_outcome(verdicts[0][1], close=self.close, reset=self._rset)
        return refused

    def send_message(
        self,
        msg: email.message.Message,
        from_addr: str | None = None,
        to_addrs: str | Sequence[str] | None = None,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> dict[str, tuple[int, bytes]]:
        """Send an ``email.message.Message``; envelope from its headers unless given.

        Bcc and Resent-Bcc are not transmitted.  Non-ASCII addresses need
        SMTPUTF8 (then ``SMTPUTF8`` and ``BODY=8BITMIME`` are added).
        """
        self.ehlo_or_helo_if_needed()
        resent = msg.get_all("Resent-Date")
        if resent is None:
            prefix = ""
        elif len(resent) == 1:
            prefix = "Resent-"
        else:
            raise ValueError("message has more than one 'Resent-' header block")
        if from_addr is None:
            field = msg[prefix + "Sender"] if (prefix + "Sender") in msg else msg[prefix + "From"]
            from_addr = email.utils.getaddresses([field])[0][1]
        if to_addrs is None:
            fields = [
                f
                for f in (msg[prefix + "To"], msg[prefix + "Bcc"], msg[prefix + "Cc"])
                if f is not None
            ]
            to_addrs = [a[1] for a in email.utils.getaddresses(fields)]
        msg_copy = copy.copy(msg)
        del msg_copy["Bcc"]
        del msg_copy["Resent-Bcc"]
        recipients = [to_addrs] if isinstance(to_addrs, str) else list(to_addrs)
        international = not "".join([from_addr, *recipients]).isascii()
        if international and not self.has_extn("smtputf8"):
            raise SMTPNotSupportedError(
                "One or more source or delivery addresses require internationalized email "
                "support, but the server does not advertise the required SMTPUTF8 capability"
            )
        with io.BytesIO() as buffer:
            if international:
                generator = email.generator.BytesGenerator(
                    buffer,
                    policy=msg.policy.clone(utf8=True),  # type: ignore[call-arg]
                )
                mail_options = (*mail_options, "SMTPUTF8", "BODY=8BITMIME")
            else:
                generator = email.generator.BytesGenerator(buffer)
            generator.flatten(msg_copy, linesep="\r\n")
            flat = buffer.getvalue()
        return self.sendmail(from_addr, to_addrs, flat, mail_options, rcpt_options)
