"""The connection: three verbs that tie the reader, the table and the encoder together.

``receive_data`` stores bytes, ``next_event`` turns them into one event at a
time, and ``send`` turns a command into the bytes to write after checking it
against the state table, the server's extensions and the pipelining rules.
Nothing here reads a socket or a clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import NoReturn, cast

from ._checks import _CHECKED_AGAINST_SERVER, TLSPolicy, _parse_params, _ServerChecks
from ._commands import (
    MAX_AUTH_LINE,
    MAX_COMMAND_LINE,
    Auth,
    AuthResponse,
    BaseCommand,
    Bdat,
    CommandLine,
    Content,
    Data,
    Ehlo,
    EndOfContent,
    Helo,
    Lhlo,
    Mail,
    Rcpt,
    Rset,
    StartTLS,
    Unchecked,
)
from ._commands import Quit as _Quit
from ._data import MAX_TEXT_LINE, DataEncoder
from ._errors import LocalProtocolError, RemoteProtocolError, ServerDisconnected
from ._events import (
    NEED_DATA,
    ConnectionClosed,
    Event,
    Greeting,
    NeedData,
    Reply,
    tuple_new,
)
from ._extensions import Extensions
from ._records import _AWAIT_GREETING, _Pending, _Transaction
from ._replies import ReplyReader
from ._state import FOLLOW, REPLY_ONLY, TRANSITIONS, Input, Outcome, State
from ._timeouts import Stage

__all__ = ["Connection", "TLSPolicy"]  # TLSPolicy is defined in _checks, below this module

#: The timeout stage of the reply to each kind of command (RFC 5321 §4.5.3.2).
#: A BDAT chunk that is not the last is acknowledged once the server has
#: taken it: a data block's time.
_STAGE_OF_REPLY: dict[Input, Stage] = {
    Input.GREETING: Stage.GREETING,
    Input.MAIL: Stage.MAIL,
    Input.RCPT: Stage.RCPT,
    Input.DATA: Stage.DATA,
    Input.END_OF_DATA: Stage.DATA_END,
    Input.BDAT: Stage.DATA_BLOCK,
    Input.BDAT_LAST: Stage.DATA_END,
}

_INPUT_OF: dict[type[BaseCommand], Input] = {
    Unchecked: Input.UNCHECKED,
    Bdat: Input.BDAT,
    Ehlo: Input.HELLO,
    Helo: Input.HELLO,
    Lhlo: Input.HELLO,
    Mail: Input.MAIL,
    Rcpt: Input.RCPT,
    Data: Input.DATA,
    Content: Input.CONTENT,
    EndOfContent: Input.END_OF_DATA,
    Rset: Input.RSET,
    StartTLS: Input.STARTTLS,
    Auth: Input.AUTH,
    AuthResponse: Input.AUTH_RESPONSE,
    _Quit: Input.QUIT,
}
# The inputs whose positive replies do more than move the state (see _apply).
_SIDE_EFFECTS = frozenset(
    {Input.RCPT, Input.HELLO, Input.AUTH, Input.AUTH_RESPONSE, Input.STARTTLS}
)
# What send() does not turn into a command line (one set lookup sorts them out).
_NOT_PLAIN = frozenset(
    {Input.UNCHECKED, Input.BDAT, Input.BDAT_LAST, Input.CONTENT, Input.END_OF_DATA}
)
_AUTH_INPUTS = frozenset({Input.AUTH, Input.AUTH_RESPONSE})  # lines up to MAX_AUTH_LINE
# What next_event uses for every reply, as module constants (one lookup less).
_TLS, _UNCHECKED, _POSITIVE, _RCPT = State.TLS, Input.UNCHECKED, Outcome.POSITIVE, Input.RCPT
_OTHER = Input.OTHER
_transition = TRANSITIONS.get
# What send() may take: the table without the rows only a reply may take.
_SEND_TRANSITIONS = {key: state for key, state in TRANSITIONS.items() if key[:2] not in REPLY_ONLY}
_tuple_new = tuple_new
# What a command hopes its reply is: 354 for DATA, nothing at all for content.
_EXPECTED = {Input.DATA: Outcome.INTERMEDIATE, Input.CONTENT: Outcome.SENT}
# Indexed by the first digit of the code; the reader lets only 2yz-5yz
# through, so the first two entries only fill the places.
_OUTCOME_OF_CLASS: tuple[Outcome, ...] = (
    Outcome.NEGATIVE,
    Outcome.NEGATIVE,
    Outcome.POSITIVE,
    Outcome.INTERMEDIATE,
    Outcome.NEGATIVE,
    Outcome.NEGATIVE,
)
# Before EHLO, after HELO and after TLS: nothing advertised (the view is immutable).
_NO_EXTENSIONS = Extensions()
# What the verb of a CommandLine means (a permissive connection's lines).
_INPUT_OF_VERB: dict[str, Input] = {
    "EHLO": Input.HELLO,
    "HELO": Input.HELLO,
    "LHLO": Input.HELLO,
    "MAIL": Input.MAIL,
    "RCPT": Input.RCPT,
    "DATA": Input.DATA,
    "RSET": Input.RSET,
    "STARTTLS": Input.STARTTLS,
    "AUTH": Input.AUTH,
    "QUIT": Input.QUIT,
}


class Connection(_ServerChecks):
    """One SMTP or LMTP session, seen from the client, with no I/O of its own.

    Args:
        lmtp: speak LMTP (RFC 2033): LHLO instead of EHLO/HELO, and one reply
            per accepted recipient after the end of data.
        lowercase_commands: write verbs and ``from:``/``to:`` in lower case,
            byte for byte as the standard library's smtplib does.
        tls_policy: ``"required"``: MAIL is refused until TLS is active, and
            the handshake procedure starts TLS or fails; ``"opportunistic"``:
            the handshake procedure starts TLS when the server offers it;
            ``"none"``: TLS only when the caller asks for it (smtplib's way).
        tls_active: the connection is already encrypted (implicit TLS, port 465).
        max_line_length: the longest message line allowed, without its CRLF
            (RFC 5321 §4.5.3.1.6: 998); ``None`` lets any length through.  A
            chunk with a longer line is refused with ``LocalProtocolError``
            and leaves the connection as it was.
        auth_in_clear: allow AUTH without TLS.  Off by default: credentials
            are refused in the clear (smtplib sends them; its facade opts in).
        permissive: let the server judge instead of the engine, for faces that
            imitate clients which do (the smtplib facade).  ``send`` then
            takes a command whatever the order of commands, the pipelining
            rules or the server's extensions say, and takes
            :class:`CommandLine`; a reply the table has no row for moves the
            state as :data:`FOLLOW` says instead of raising.  What is never
            relaxed: CR, LF and NUL in commands, the command line limits, the
            encoding of message content, every check on the server's replies
            (grammar, limits, unsolicited replies, bytes after STARTTLS's 220).

    The connection starts in ``State.GREETING``, waiting for the server's first
    reply; nothing may be sent before it arrives.
    """

    def __init__(
        self,
        *,
        lmtp: bool = False,
        lowercase_commands: bool = False,
        tls_policy: TLSPolicy = "opportunistic",
        tls_active: bool = False,
        auth_in_clear: bool = False,
        max_line_length: int | None = MAX_TEXT_LINE,
        permissive: bool = False,
    ) -> None:
        if tls_policy not in ("required", "opportunistic", "none"):
            raise ValueError(f"tls_policy must be required, opportunistic or none: {tls_policy!r}")
        self.lmtp = lmtp
        self.lowercase_commands = lowercase_commands
        self.tls_policy: TLSPolicy = tls_policy
        self._tls_active = tls_active
        self.auth_in_clear = auth_in_clear
        self.max_line_length = max_line_length
        self.permissive = permissive
        self._authenticated = False
        self._state = State.GREETING
        self._projected = State.CONNECTED  # what the hoped-for 220 greeting leads to
        self._pending: deque[_Pending] = deque((_AWAIT_GREETING,))
        self._reader = ReplyReader()
        # Bound once: receive_data and next_event run for every read and reply.
        self._feed = self._reader.feeder
        self._next_reply = self._reader.next_reply
        self._extensions = _NO_EXTENSIONS
        self._tx = _Transaction()
        self._eof = False
        self._error: str | None = None

    # -- what the caller may look at -------------------------------------------------

    @property
    def state(self) -> State:
        """The state confirmed by the server's replies so far."""
        return self._state

    @property
    def tls_active(self) -> bool:
        """True once the session is encrypted (implicit TLS, or after STARTTLS)."""
        return self._tls_active

    @property
    def extensions(self) -> Extensions:
        """What the last successful EHLO/LHLO advertised (empty after HELO or TLS)."""
        return self._extensions

    @property
    def awaiting(self) -> tuple[BaseCommand, ...]:
        """The commands sent whose replies have not arrived, oldest first."""
        return tuple(p.command for p in self._pending if p.command is not None)

    @property
    def reply_due(self) -> bool:
        """True while a reply is awaited: the greeting, or one to a command sent."""
        return bool(self._pending)

    @property
    def reply_stage(self) -> Stage:
        """The timeout stage of the next reply awaited (``COMMAND`` if none is)."""
        pending = self._pending
        return _STAGE_OF_REPLY.get(pending[0].input, Stage.COMMAND) if pending else Stage.COMMAND

    @property
    def accepted_recipients(self) -> tuple[str, ...]:
        """The recipients the server accepted in the current transaction."""
        return tuple(self._tx.accepted)

    # -- receiving ---------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Store bytes read from the server; ``b""`` means the server closed.

        Nothing is parsed here; call :meth:`next_event` afterwards.

        Raises:
            ValueError: if bytes arrive after ``b""`` was fed.
        """
        if self._eof and data:
            raise ValueError("data fed after end of file")
        if not data:
            self._eof = True
            return
        self._feed(data)

    def next_event(self) -> Event | NeedData:
        """Parse and return the next event, or :data:`NEED_DATA`.

        Returns:
            A :class:`Greeting` for the server's first reply, a :class:`Reply`
            paired with the command that drew it, :class:`ConnectionClosed`
            once the server closed and every whole reply was returned, or
            :data:`NEED_DATA` when the buffer holds no whole reply.

        Raises:
            RemoteProtocolError: the server broke the grammar or a limit, sent a
                reply nothing was waiting for, or sent bytes after accepting
                STARTTLS.  The connection moves to ``ERROR`` and stays there.
        """
        if self._error is not None or self._state is _TLS:
            return self._next_event_blocked()
        try:
            parsed = self._next_reply()
        except RemoteProtocolError as exc:
            self._fail_remote(str(exc))
        if parsed is None:
            return NEED_DATA if not self._eof else self._closed()
        # From here to the end runs for every reply of every session: local
        # names, module constants, no helper calls on the usual path.
        pending = self._pending
        if not pending:
            self._fail_remote(f"{parsed[0]} reply received when no command was waiting for one")
        code, lines = parsed
        entry = pending.popleft()
        command, inp, expected, _, recipient, source, target = entry
        outcome = _OUTCOME_OF_CLASS[code // 100]
        state = self._state
        if state is not source or outcome is not expected:
            target = state if inp is _UNCHECKED else _transition((state, inp, outcome))
        if target is None:
            if not self.permissive or command is None:
                what = "greeting" if command is None else f"reply to {command.verb}"
                self._fail_remote(f"{code} is not a valid {what} in state {state.name}")
            target = FOLLOW.get((inp, outcome), state)
        if command is None:
            self._state = self._projected = target
            if code == 421:  # "service not available, closing" as a greeting
                self._state = self._projected = State.CLOSED
            return _tuple_new(Greeting, (code, lines))
        if outcome is _POSITIVE and inp in _SIDE_EFFECTS:
            if inp is _RCPT:
                self._tx.accepted.append(recipient)  # type: ignore[arg-type]  # RCPT sets it
            else:
                self._apply(entry, lines)
        self._state = target
        if code == 421:
            # RFC 5321 §3.8: 421 means the server is closing the channel; the
            # commands still outstanding will never be answered.
            pending.clear()
            self._state = self._projected = State.CLOSED
        elif outcome is not expected:
            self._reproject()
        return _tuple_new(Reply, (command, code, lines, recipient))

    def _next_event_blocked(self) -> NeedData | ConnectionClosed:
        """``next_event`` in the ERROR state, or between STARTTLS's 220 and the handshake."""
        if self._error is not None:
            raise RemoteProtocolError(f"connection is in the ERROR state: {self._error}")
        # RFC 3207 §5 / CVE-2011-0411: bytes that arrive in the clear after
        # the 220 could be read as if they came over TLS; refuse them.
        if self._reader.has_unparsed():
            self._fail_remote("bytes received after the 220 reply to STARTTLS")
        if self._eof:
            return self._closed()  # closed instead of the handshake: nothing more will come
        return NEED_DATA

    def _closed(self) -> ConnectionClosed:
        """``next_event`` when the server closed and no whole reply is left."""
        if self._reader.has_unparsed():
            self._fail_remote(
                "server closed the connection in the middle of a reply", ServerDisconnected
            )
        unanswered = self.awaiting
        self._pending.clear()
        self._state = self._projected = State.CLOSED
        return ConnectionClosed(unanswered)

    def connection_lost(self) -> tuple[BaseCommand, ...]:
        """Tell the engine the connection is gone: timed out, reset, or closed locally.

        Whatever was awaited will never come: the connection moves to
        ``CLOSED`` (``ERROR`` stays ``ERROR``) and refuses every command.
        Idempotent.  The procedures call it when the driver raises an I/O
        error into them.

        Returns:
            The commands that were left without a reply, oldest first.
        """
        unanswered = self.awaiting
        self._pending.clear()
        self._eof = True
        if self._state is not State.ERROR:
            self._state = self._projected = State.CLOSED
        return unanswered

    def _apply(self, entry: _Pending, lines: tuple[bytes, ...]) -> None:
        """The side effects of a positive reply beyond the state change."""
        inp = entry.input
        if inp is Input.HELLO:
            command = entry.command
            helo = type(command) is Helo or (
                type(command) is CommandLine and command.verb == "HELO"
            )
            self._extensions = _NO_EXTENSIONS if helo else Extensions.from_ehlo_lines(lines)
        elif inp is Input.AUTH or inp is Input.AUTH_RESPONSE:
            self._authenticated = True
        elif inp is Input.STARTTLS and self._reader.has_unparsed():
            self._fail_remote("bytes received after the 220 reply to STARTTLS")

    def _reproject(self) -> None:
        """Recompute the state the outstanding commands lead to, after a surprise."""
        state = self._state
        for entry in self._pending:
            hoped = TRANSITIONS.get((state, entry.input, entry.expected))
            state = hoped or TRANSITIONS.get((state, entry.input, Outcome.NEGATIVE), state)
        self._projected = state

    def _fail_remote(
        self, message: str, error: type[RemoteProtocolError] = RemoteProtocolError
    ) -> NoReturn:
        self._error = message
        self._state = self._projected = State.ERROR
        raise error(message)

    # -- sending -----------------------------------------------------------------------

    def send(self, command: BaseCommand) -> bytes:
        """Check ``command`` and return the bytes to write for it.

        Returns:
            The command line with CRLF, or for :class:`Content` and
            :class:`EndOfContent` the encoded message bytes.

        Raises:
            LocalProtocolError: the command is not allowed in this state, a reply
                must be awaited first (no PIPELINING, or the last command ends a
                pipelined group), the server did not advertise what the command
                needs, or the line would be too long.  No byte was produced and
                the connection is as it was.  A permissive connection refuses
                only the line limits and a :class:`CommandLine` when not permissive.
            RemoteProtocolError: no reply is awaited, yet the server's bytes
                hold more (a surplus reply, RFC 5321 §4.2: a reply answers one
                command); the connection moves to ``ERROR``.
        """
        if self._error is not None:
            raise LocalProtocolError(f"connection is in the ERROR state: {self._error}")
        if not self._pending and self._reader.has_unparsed():
            # Bytes that no command asked for (a second reply to one NOOP):
            # paired with this command they would be taken for its answer.
            self._fail_remote("the server sent a reply that no command was waiting for")
        # One dictionary lookup classifies the command; the checks below then
        # compare enum members (few calls), since send() runs once per command.
        inp = _INPUT_OF.get(type(command), _OTHER)
        if inp is _OTHER and type(command) is CommandLine:
            return self._send_line(command)
        if inp in _NOT_PLAIN:
            if inp is _UNCHECKED:
                raise LocalProtocolError("raw bytes go through send_unchecked(), not send()")
            if inp is Input.BDAT and cast(Bdat, command).last:
                inp = Input.BDAT_LAST
        expected = _EXPECTED.get(inp, _POSITIVE)
        if self._pending and not self.permissive:
            last = self._pending[-1]
            if last.ends_group or not self._extensions.pipelining:
                waiting = "the greeting" if last.command is None else last.command.verb
                raise LocalProtocolError(
                    f"cannot send {command.verb} before the reply to {waiting}"
                    + ("" if last.ends_group else " (the server did not offer PIPELINING)")
                )
        target = _SEND_TRANSITIONS.get((self._projected, inp, expected))
        if target is None:
            if not self.permissive:
                raise LocalProtocolError(
                    f"cannot send {command.verb} in state {self._projected.name}"
                )
            target = FOLLOW.get((inp, expected), self._projected)
        if inp in _NOT_PLAIN:
            return self._send_not_a_line(command, inp, target)
        recipient = None
        if self.permissive:
            if inp is _RCPT:
                recipient = cast(Rcpt, command).recipient
        elif inp is _RCPT:
            # RCPT's checks here rather than in _check_against_server: there
            # is one per recipient, and most have no parameters.
            rcpt: Rcpt = command  # type: ignore[assignment]  # _INPUT_OF says so
            if rcpt.params:
                self._check_params_offered(rcpt)
            if not self._tx.utf8 and rcpt.has_non_ascii():
                raise LocalProtocolError(
                    "non-ASCII RCPT needs a MAIL with the SMTPUTF8 parameter (RFC 6531): "
                    f"{rcpt.recipient!r}"
                )
            recipient = rcpt.recipient
        elif inp in _CHECKED_AGAINST_SERVER:
            self._check_against_server(command, inp)
        data = (command.line(self.lowercase_commands) + "\r\n").encode()
        if len(data) > MAX_COMMAND_LINE:
            limit = MAX_AUTH_LINE if inp in _AUTH_INPUTS else MAX_COMMAND_LINE
            if len(data) > limit:
                raise LocalProtocolError(
                    f"{command.verb} line is {len(data)} octets, over the limit of {limit}"
                )
        if inp is Input.MAIL:
            params = _parse_params(cast(Mail, command).params)
            self._tx = _Transaction(
                utf8="SMTPUTF8" in params, binary=params.get("BODY", "").upper() == "BINARYMIME"
            )
        elif inp is Input.DATA:
            self._tx.encoder = DataEncoder(max_line_length=self.max_line_length)
        self._pending.append(
            _tuple_new(
                _Pending,
                (command, inp, expected, command.ends_group, recipient, self._projected, target),
            )
        )
        self._projected = target
        return data

    def _send_not_a_line(self, command: BaseCommand, inp: Input, target: State) -> bytes:
        """The rest of send() for message content, its end and BDAT."""
        if inp is Input.CONTENT or inp is Input.END_OF_DATA:
            encoder = self._tx.encoder
            if encoder is None:  # DATA made it, unless a permissive caller skipped DATA
                encoder = self._tx.encoder = DataEncoder(max_line_length=self.max_line_length)
            self._projected = target
            if inp is Input.CONTENT:
                return encoder.encode(cast(Content, command).data)
            self._expect_verdict(command, Input.END_OF_DATA)
            return encoder.end()
        return self._send_bdat(cast(Bdat, command), inp, target)

    def _send_line(self, command: CommandLine) -> bytes:
        """``send`` for a :class:`CommandLine`: its verb says what its reply means."""
        if not self.permissive:
            raise LocalProtocolError("a CommandLine is sent only by a permissive connection")
        projected = self._projected
        if projected is State.AUTH and " " not in command.text:
            # RFC 4954 §4: the line answers the challenge (base64 or "*": one
            # word; a line with a space is a command, sent mid-exchange).
            inp = Input.AUTH_RESPONSE
        else:
            inp = _INPUT_OF_VERB.get(command.verb, _OTHER)
            if inp is Input.AUTH:
                # Credentials in the clear are a policy, not syntax: a
                # permissive connection keeps it (the smtplib face opts in).
                self._check_tls_for_auth()
        expected = _EXPECTED.get(inp, _POSITIVE)
        target = _SEND_TRANSITIONS.get((projected, inp, expected))
        if target is None:
            target = FOLLOW.get((inp, expected), projected)
        data = (command.text + "\r\n").encode()
        limit = MAX_AUTH_LINE if inp in _AUTH_INPUTS else MAX_COMMAND_LINE
        if len(data) > limit:
            raise LocalProtocolError(
                f"command line is {len(data)} octets, over the limit of {limit}"
            )
        recipient = None
        if inp is _RCPT:
            recipient = command.path()
        elif inp is Input.MAIL:
            params = _parse_params(command.params())
            self._tx = _Transaction(
                utf8="SMTPUTF8" in params, binary=params.get("BODY", "").upper() == "BINARYMIME"
            )
        elif inp is Input.DATA:
            self._tx.encoder = DataEncoder(max_line_length=self.max_line_length)
        self._pending.append(
            _tuple_new(_Pending, (command, inp, expected, True, recipient, projected, target))
        )
        self._projected = target
        return data

    def send_unchecked(self, data: bytes, *, replies: int = 1) -> bytes:
        """UNSAFE: return ``data`` to be written exactly as given, unchecked.

        For testing servers (fuzzing, malformed commands): no validation of any
        kind is done, not even for CR, LF or NUL, and no state rule applies.
        The engine still parses the server's answers and pairs the next
        ``replies`` replies with an :class:`Unchecked` pseudo-command; those
        replies never change the state.  Never use it for ordinary mail: the
        typed commands exist so that nothing unintended reaches the wire.

        Raises:
            LocalProtocolError: the connection is in the ERROR state or closed.
            TypeError / ValueError: ``data`` is not bytes, ``replies`` < 0.
        """
        if not isinstance(data, bytes):
            raise TypeError("send_unchecked takes bytes")
        if replies < 0:
            raise ValueError("replies must be 0 or more")
        if self._error is not None or self._state is State.CLOSED:
            raise LocalProtocolError(f"cannot send in state {self._state.name}")
        command = Unchecked(data)
        for _ in range(replies):
            self._pending.append(_Pending(command, Input.UNCHECKED, Outcome.POSITIVE, True))
        return data

    def _send_bdat(self, command: Bdat, inp: Input, target: State) -> bytes:
        if not self._extensions.chunking:
            raise LocalProtocolError("BDAT needs CHUNKING, which the server did not offer")
        if self.lmtp and command.last and any(p.input is Input.RCPT for p in self._pending):
            # RFC 2033 §4.2: one verdict per accepted recipient; which are
            # accepted is known only once every RCPT is answered.
            raise LocalProtocolError("in LMTP, BDAT LAST must wait for the replies to RCPT")
        # The size on the wire counts the chunk as sent: with line endings made
        # CRLF (and a final CRLF added to an open last line) unless BINARYMIME.
        if self._tx.binary:
            chunk = bytes(command.data)
        else:
            chunker = self._tx.chunker or DataEncoder(
                dot_stuff=False, max_line_length=self.max_line_length
            )
            chunk = chunker.encode(command.data)
            self._tx.chunker = chunker
            if command.last:
                chunk += self._tx.chunker.end()
        if command.last:
            self._expect_verdict(command, inp)
        else:
            self._pending.append(_Pending(command, inp, Outcome.POSITIVE, False))
        self._projected = target
        verb = "bdat" if self.lowercase_commands else "BDAT"
        last = " LAST" if command.last else ""
        return f"{verb} {len(chunk)}{last}\r\n".encode() + chunk

    def send_many(self, commands: Iterable[BaseCommand]) -> bytes:
        """Send several commands at once (a pipelined group) or none of them.

        Every command is checked as :meth:`send` would, in order; the bytes of
        all of them are returned together, ready for one write.

        Raises:
            LocalProtocolError: as :meth:`send`, for the first command that may
                not be sent.  None of the commands counts as sent and the
                connection is exactly as it was before the call.
        """
        # The encoder is copied, not referenced: Content changes it in place,
        # and a rollback that kept a "line open" flag could let a later chunk
        # start with ".CRLF" and end the message early.
        projected, pending, tx = self._projected, len(self._pending), self._tx.copy()
        try:
            return b"".join([self.send(command) for command in commands])
        except LocalProtocolError:
            self._projected, self._tx = projected, tx
            while len(self._pending) > pending:
                self._pending.pop()
            raise

    def _expect_verdict(self, command: BaseCommand, inp: Input) -> None:
        """Queue the reply (or, in LMTP, the replies) that end a message."""
        if self.lmtp:
            # RFC 2033 §4.2: one reply per recipient that RCPT accepted, in order.
            # A server that accepted the content with none accepted gets one slot.
            slots: list[str | None] = [*self._tx.accepted] or [None]
            for recipient in slots:
                self._pending.append(_Pending(command, inp, Outcome.POSITIVE, False, recipient))
        else:
            self._pending.append(_Pending(command, inp, Outcome.POSITIVE, False))

    def start_tls_done(self) -> None:
        """Tell the engine the TLS handshake after STARTTLS finished.

        The extensions are forgotten (RFC 3207 §4.2: the client "MUST discard
        any knowledge obtained from the server"), and a fresh EHLO is needed.

        Raises:
            LocalProtocolError: if STARTTLS was not accepted just before.
        """
        target = TRANSITIONS.get((self._state, Input.TLS_DONE, Outcome.SENT))
        if target is None or self._error is not None:
            raise LocalProtocolError(f"no TLS handshake is due in state {self._state.name}")
        self._state = self._projected = target
        self._extensions = _NO_EXTENSIONS
        self._tls_active = True
        # RFC 3207 §4.2: "discard any knowledge obtained from the server"; an
        # AUTH from before TLS does not count inside it.
        self._authenticated = False
