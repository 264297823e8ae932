"""The ``smtplib`` facade's mail sending: ``sendmail()`` and ``send_message()``.

:class:`SendmailMixin` checks every address and option before the first byte
goes out, then sends MAIL, RCPT and DATA one by one, or through the engine's
``send_mail`` procedure in one write when the server offers PIPELINING.
"""

from __future__ import annotations

import copy
import email.generator
import email.message
import email.utils
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from smtp_core import procedures

from ._errors import (
    SMTPDataError,
    SMTPNotSupportedError,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
)
from ._smtplib_commands import CommandsMixin
from ._smtplib_helpers import _check_newlines, _fix_eols

__all__ = ["SendmailMixin"]


class SendmailMixin(CommandsMixin):
    """smtplib's :meth:`sendmail` and :meth:`send_message`."""

    if TYPE_CHECKING:
        # Defined by SMTP itself (smtpclient._smtplib), where quoteaddr is looked up.
        def mail(self, sender: str, options: Sequence[str] = ()) -> tuple[int, bytes]: ...
        def rcpt(self, recip: str, options: Sequence[str] = ()) -> tuple[int, bytes]: ...
        @staticmethod
        def _path(address: str) -> str: ...

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

        With PIPELINING, MAIL, every RCPT and DATA go out in one write.

        Raises:
            SMTPHeloError, SMTPSenderRefused, SMTPRecipientsRefused (every
            recipient refused; for LMTP, also after the data), SMTPDataError,
            SMTPNotSupportedError, SMTPServerDisconnected.
        """
        if isinstance(to_addrs, str):
            to_addrs = [to_addrs]
        if not to_addrs:
            raise SMTPRecipientsRefused({})
        # Every address and option is checked before the first byte goes out,
        # so a bad recipient cannot leave a half-sent transaction behind.  Each
        # address is quoted once here and reused.
        paths = {address: self._path(address) for address in (from_addr, *to_addrs)}
        _check_newlines(f"mail from:<{paths[from_addr]}>{''.join(' ' + o for o in mail_options)}")
        # _path checked every address; the options are all that is left.
        rcpt_suffix = "".join(" " + o for o in rcpt_options)
        _check_newlines(f"rcpt to:<{paths[to_addrs[0]]}>{rcpt_suffix}")
        self.ehlo_or_helo_if_needed()
        if isinstance(msg, str):
            msg = _fix_eols(msg).encode("ascii")
        options: list[str] = []
        if self.does_esmtp:
            if self.has_extn("size"):
                options.append(f"size={len(msg)}")
            options.extend(mail_options)
        if self._conn is not None and self._conn.extensions.pipelining:
            return self._sendmail_pipelined(
                from_addr, to_addrs, msg, paths=paths, options=options, rcpt_options=rcpt_options
            )
        code, resp = self.mail(from_addr, options)
        if code != 250:
            self._close_or_rset(code)
            raise SMTPSenderRefused(code, resp, from_addr)
        refused: dict[str, tuple[int, bytes]] = {}
        for each in to_addrs:
            code, resp = self.rcpt(each, rcpt_options)
            if code not in (250, 251):
                refused[each] = (code, resp)
            if code == 421:
                self.close()
                raise SMTPRecipientsRefused(refused)
        if len(refused) == len(to_addrs):
            self._rset()
            raise SMTPRecipientsRefused(refused)
        code, resp = self.data(msg)
        if self._lmtp:
            for rcpt, (lcode, lresp) in self.lmtp_replies.items():
                if lcode != 250:
                    refused[rcpt] = (lcode, lresp)
            if len(refused) == len(to_addrs):
                raise SMTPRecipientsRefused(refused)
            return refused
        if code != 250:
            self._close_or_rset(code)
            raise SMTPDataError(code, resp)
        return refused

    def _close_or_rset(self, code: int) -> None:
        if code == 421:
            self.close()
        else:
            self._rset()

    def _sendmail_pipelined(
        self,
        from_addr: str,
        to_addrs: Sequence[str],
        msg: bytes,
        *,
        paths: dict[str, str],
        options: list[str],
        rcpt_options: Sequence[str],
    ) -> dict[str, tuple[int, bytes]]:
        if any(x.lower() == "smtputf8" for x in options):
            if not self.has_extn("smtputf8"):
                raise SMTPNotSupportedError("SMTPUTF8 not supported by server")
            self.command_encoding = "utf-8"
        if self.command_encoding == "ascii":
            # As smtplib: without SMTPUTF8 a non-ASCII address is a UnicodeEncodeError.
            "".join([*paths.values(), *options, *rcpt_options]).encode("ascii")
        assert self._conn is not None
        result = self._run(
            procedures.send_mail(
                self._conn,
                paths[from_addr],
                [paths[a] for a in to_addrs],
                msg,
                mail_params=options,
                rcpt_params=rcpt_options,
                strict=False,
            )
        )
        mail_reply = result.mail_reply
        if not mail_reply.is_positive:
            self._close_or_rset(mail_reply.code)
            raise SMTPSenderRefused(mail_reply.code, b"\n".join(mail_reply.lines), from_addr)
        refused: dict[str, tuple[int, bytes]] = {}
        for address, r in zip(to_addrs, result.recipients, strict=True):
            if r.rcpt_reply is None or r.rcpt_reply.code not in (250, 251):
                reply = r.rcpt_reply or r.reply
                refused[address] = (reply.code, b"\n".join(reply.lines))
        if len(refused) == len(to_addrs):
            if result.recipients[-1].reply.code == 421:
                self.close()
            raise SMTPRecipientsRefused(refused)
        data_reply = result.final_reply or result.data_reply
        if self._lmtp and result.final_reply is not None:
            for address, r in zip(to_addrs, result.recipients, strict=True):
                if address not in refused and r.reply.code != 250:
                    refused[address] = (r.reply.code, b"\n".join(r.reply.lines))
            if len(refused) == len(to_addrs):
                raise SMTPRecipientsRefused(refused)
        elif data_reply is not None and data_reply.code != 250:
            if data_reply.code == 421:
                self.close()
            raise SMTPDataError(data_reply.code, b"\n".join(data_reply.lines))
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
