"""Procedures: the protocol steps every driver shares, written once as generators.

A procedure is a generator that yields I/O requests and receives their results:

* :class:`Write` -- write these bytes; the driver sends back ``None``;
* :class:`Read` -- read what is available; the driver sends back the bytes
  (``b""`` when the server closed);
* :class:`UpgradeTLS` -- start TLS on the connection now (after STARTTLS drew
  220); the driver sends back ``None``.

The value a procedure returns (``StopIteration.value``) is its result.  A
driver is therefore a short loop (see ``transports.sync``)::

    request = next(procedure)
    while True:
        if isinstance(request, Write): sock.sendall(request.data); result = None
        elif isinstance(request, Read): result = sock.recv(65536)
        else: upgrade(); result = None
        request = procedure.send(result)   # StopIteration carries the result

Procedures raise :class:`ReplyError` when a step they need is refused,
:class:`ServerDisconnected` when the server closes while a reply is due, and let
``LocalProtocolError``/``RemoteProtocolError`` through.

Every request carries the timeout stage it belongs to (RFC 5321 §4.5.3.2,
:class:`Timeouts`).  A driver whose I/O fails -- a stage's time ran out
(:class:`StageTimeout`), a reset, a failed handshake -- raises the error into
the procedure (``procedure.throw(exc)``): the procedure marks the connection
lost (:meth:`Connection.connection_lost`) and lets it through, except after
the end of a message, where it becomes :class:`OutcomeUnknown`.
"""

from __future__ import annotations

import base64
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar, cast, final

from ._commands import (
    MAX_AUTH_LINE,
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
    Quit,
    Rcpt,
    Rset,
    StartTLS,
)
from ._connection import Connection
from ._errors import (
    LocalProtocolError,
    OutcomeUnknown,
    RemoteProtocolError,
    ReplyError,
    ServerDisconnected,
)
from ._events import NEED_DATA, ConnectionClosed, Event, Greeting, Reply
from ._sasl import SASLMechanism, choose_mechanism, mechanism_for
from ._state import State
from ._timeouts import Stage

__all__ = [
    "READ",
    "READ_MORE",
    "UPGRADE_TLS",
    "IORequest",
    "Procedure",
    "Read",
    "RecipientResult",
    "TransactionResult",
    "UpgradeTLS",
    "Write",
    "authenticate",
    "command",
    "greet",
    "handshake",
    "hello",
    "login",
    "quit",
    "read_event",
    "read_reply",
    "send_content",
    "send_mail",
    "starttls",
    "transaction",
]

T = TypeVar("T")

#: Bytes of message content handed to the encoder at once: big enough that the
#: C-level passes dominate, small enough that memory does not follow the message.
CONTENT_CHUNK = 256 * 1024
#: Octets of pipelined commands written ahead of the replies read.  RFC 2920
#: §3.1: the client must not deadlock the server, which stops reading when
#: nobody reads its replies; a group is written in windows, each after the
#: replies to the window before it were read.  An ordinary group (a few
#: hundred recipients) fits in one window: one write, one round trip.
PIPELINE_WINDOW = 32 * 1024


@final
@dataclass(frozen=True, slots=True)
class Write:
    """Ask the driver to write ``data``; it answers ``None``.

    Attributes:
        stage: whose timeout bounds the write: ``DATA_BLOCK`` for message
            content (RFC 5321 §4.5.3.2.5: each block), the stage of the reply
            the command draws otherwise.
    """

    data: bytes
    stage: Stage = Stage.COMMAND


@final
@dataclass(frozen=True, slots=True)
class Read:
    """Ask the driver for the bytes available; it answers them, or ``b""`` at EOF.

    Attributes:
        starts_reply: True for the first read while waiting for a reply, False
            for the reads that complete it.  A driver that bounds the wait for
            each whole reply (RFC 5321 §4.5.3.2 timeouts) starts its deadline
            on ``starts_reply`` reads, so a server trickling a byte at a time
            cannot hold it past the deadline.
        stage: whose timeout (:class:`Timeouts`) bounds the reply.
    """

    starts_reply: bool = True
    stage: Stage = Stage.COMMAND


@final
@dataclass(frozen=True, slots=True)
class UpgradeTLS:
    """Ask the driver to run the TLS handshake now; it answers ``None``.

    Its time is :attr:`Timeouts.tls` (stage ``TLS``).
    """


READ = Read()
READ_MORE = Read(starts_reply=False)
UPGRADE_TLS = UpgradeTLS()
# One request object per stage, made once: a read is asked for every reply.
_READS = {stage: Read(True, stage) for stage in Stage}
_READS_MORE = {stage: Read(False, stage) for stage in Stage}
_READS[Stage.COMMAND], _READS_MORE[Stage.COMMAND] = READ, READ_MORE
IORequest = Write | Read | UpgradeTLS
Procedure = Generator[IORequest, "bytes | None", T]


def read_event(conn: Connection) -> Procedure[Event]:
    """Read until the connection has an event, and return it."""
    stage = conn.reply_stage
    request = _READS[stage]
    while True:
        event = conn.next_event()
        if event is not NEED_DATA:
            return event
        try:
            data = yield request
        except Exception:
            conn.connection_lost()  # the driver's I/O failed: nothing more will come
            raise
        request = _READS_MORE[stage]
        if data is None:
            raise TypeError("a driver must answer Read with bytes (b'' at end of file)")
        conn.receive_data(data)


def read_reply(conn: Connection) -> Procedure[Reply]:
    """Read the next reply to a command.

    Raises:
        ServerDisconnected: the server closed the connection first.
    """
    # read_event's loop, inlined: one generator per reply instead of two,
    # and replies are the most frequent thing a session reads.
    event = conn.next_event()
    if event is NEED_DATA:
        stage = conn.reply_stage
        request = _READS[stage]
        while event is NEED_DATA:
            try:
                data = yield request
            except Exception:
                conn.connection_lost()  # the driver's I/O failed: nothing more will come
                raise
            if data is None:
                raise TypeError("a driver must answer Read with bytes (b'' at end of file)")
            conn.receive_data(data)
            event = conn.next_event()
            request = _READS_MORE[stage]
    if isinstance(event, ConnectionClosed):
        verbs = ", ".join(c.verb for c in event.unanswered) or "nothing"
        raise ServerDisconnected(f"server closed the connection; unanswered: {verbs}")
    assert isinstance(event, Reply)  # a greeting comes only first, and greet() reads it
    return event


def command(conn: Connection, cmd: BaseCommand) -> Procedure[Reply]:
    """Send one command and return its reply, whatever its code."""
    data = conn.send(cmd)
    try:
        yield Write(data)
    except Exception:
        conn.connection_lost()  # the driver's I/O failed
        raise
    return (yield from read_reply(conn))


def _write(conn: Connection, data: bytes, stage: Stage = Stage.COMMAND) -> Procedure[None]:
    """Have the driver write ``data``; if it fails, the connection is lost."""
    try:
        yield Write(data, stage)
    except Exception:
        conn.connection_lost()
        raise


def greet(conn: Connection) -> Procedure[Greeting]:
    """Read the server's greeting.

    Raises:
        ReplyError: the greeting was not 220 (the session is refused; the
            caller may send QUIT, RFC 5321 §3.1).
        ServerDisconnected: the server closed without a greeting.
    """
    event = yield from read_event(conn)
    if isinstance(event, ConnectionClosed):
        raise ServerDisconnected("server closed the connection before its greeting")
    assert isinstance(event, Greeting)  # the connection yields a Greeting first
    if not event.is_positive:
        raise ReplyError(event)
    return event


def hello(conn: Connection, name: str, *, strict: bool = True) -> Procedure[Reply]:
    """Say EHLO (LHLO in LMTP), falling back to HELO if EHLO is refused.

    The fallback is a visible step: RFC 5321 §3.2 has a server that does not
    know EHLO answer 500, 502, 504 or 550, and a 5yz reply to EHLO here
    leads to one HELO.  A 4yz reply is not a refusal of EHLO itself and is
    returned as an error.

    Returns:
        The positive reply to EHLO, LHLO or HELO; ``conn.extensions`` is set.

    Raises:
        ReplyError: the greeting command (and HELO, if tried) was refused.
    """
    if conn.lmtp:
        reply = yield from command(conn, Lhlo(name, strict=strict))
    else:
        reply = yield from command(conn, Ehlo(name, strict=strict))
        if reply.is_permanent:
            reply = yield from command(conn, Helo(name, strict=strict))
    if not reply.is_positive:
        raise ReplyError(reply)
    return reply


def handshake(conn: Connection, name: str, *, strict: bool = True) -> Procedure[Reply]:
    """Read the greeting, say hello, and start TLS as ``conn.tls_policy`` asks.

    With policy ``"opportunistic"`` or ``"required"``, a server that offers
    STARTTLS is asked for it and greeted again inside TLS (RFC 3207 §4.2).

    Raises:
        LocalProtocolError: policy ``"required"`` and the server does not
            offer STARTTLS (nothing more is sent; the caller should QUIT).
        ReplyError: the greeting, hello or STARTTLS was refused.
    """
    yield from greet(conn)
    reply = yield from hello(conn, name, strict=strict)
    if conn.tls_active or conn.tls_policy == "none":
        return reply
    if not conn.extensions.starttls:
        if conn.tls_policy == "required":
            raise LocalProtocolError("the server does not offer STARTTLS and TLS is required")
        return reply
    yield from starttls(conn)
    return (yield from hello(conn, name, strict=strict))


def starttls(conn: Connection) -> Procedure[Reply]:
    """Send STARTTLS and, on 220, have the driver start TLS.

    Afterwards the extensions are forgotten; say :func:`hello` again.

    Raises:
        ReplyError: STARTTLS was refused.
    """
    reply = yield from command(conn, StartTLS())
    if not reply.is_positive:
        raise ReplyError(reply)
    try:
        yield UPGRADE_TLS
    except Exception:
        conn.connection_lost()  # a failed handshake leaves nothing to talk to
        raise
    conn.start_tls_done()
    return reply


#: Challenges one AUTH exchange may take before the engine gives up on a
#: server that never ends it (SCRAM needs 2; smtplib allows 5).
MAX_AUTH_CHALLENGES = 10


def login(conn: Connection, mechanism: SASLMechanism) -> Procedure[Reply]:
    """Authenticate with ``mechanism`` (RFC 4954), using its initial response if it has one.

    An initial response that would make the AUTH line too long is sent instead
    as the answer to the server's first, empty challenge.  A challenge the
    mechanism refuses, or that is not base64, cancels the exchange with ``*``.
    On ``235``, SCRAM's server signature must already have been verified.

    Returns:
        The ``235`` reply.

    Raises:
        ReplyError: the server refused (``535`` bad credentials, ``534``...).
        RemoteSASLError / RemoteProtocolError: the server broke the mechanism.
        LocalProtocolError: AUTH not allowed (TLS off, not offered, done already).
    """
    initial = mechanism.initial_response()
    pending_initial: bytes | None = None
    auth = Auth(mechanism.name, initial)
    # RFC 4954 §4: an initial response that would make the AUTH line longer
    # than 12288 octets is sent as the answer to an empty challenge instead.
    if initial is not None and len(auth.line()) + 2 > MAX_AUTH_LINE:
        auth, pending_initial = Auth(mechanism.name), initial
    reply = yield from command(conn, auth)
    challenges = 0
    while reply.is_intermediate:
        challenges += 1
        if challenges > MAX_AUTH_CHALLENGES:
            yield from command(conn, AuthResponse(cancel=True))
            raise RemoteProtocolError(
                f"AUTH {mechanism.name}: more than {MAX_AUTH_CHALLENGES} challenges"
            )
        try:
            challenge = base64.b64decode(b"".join(reply.lines), validate=True)
            if pending_initial is not None:
                response, pending_initial = pending_initial, None
            else:
                response = mechanism.respond(challenge)
        except (ValueError, RemoteProtocolError) as exc:  # binascii.Error is a ValueError
            yield from command(conn, AuthResponse(cancel=True))
            if isinstance(exc, RemoteProtocolError):
                raise
            raise RemoteProtocolError(f"AUTH {mechanism.name}: challenge is not base64") from exc
        reply = yield from command(conn, AuthResponse(response))
    if not reply.is_positive:
        raise ReplyError(reply)
    mechanism.finish()
    return reply


def authenticate(
    conn: Connection,
    username: str,
    password: str | None = None,
    *,
    token: str | None = None,
    preference: Sequence[str] | None = None,
) -> Procedure[Reply]:
    """Choose the best mechanism the server offers, and :func:`login` with it.

    With ``token``, only OAUTHBEARER and XOAUTH2 are considered; otherwise
    the password mechanisms, by ``preference`` (default: SCRAM-SHA-256,
    SCRAM-SHA-1, CRAM-MD5, PLAIN, LOGIN).  User names and passwords may be
    non-ASCII: they are sent as UTF-8 after SASLprep (RFC 4013).

    Raises:
        LocalProtocolError: no mechanism in common (nothing is sent), or AUTH
            is not allowed now.
        ReplyError, RemoteProtocolError: as :func:`login`.
    """
    name = choose_mechanism(conn.extensions.auth, preference, token=token is not None)
    if name is None:
        offered = " ".join(sorted(conn.extensions.auth)) or "none"
        raise LocalProtocolError(
            f"no AUTH mechanism in common with the server (offered: {offered})"
        )
    mechanism = mechanism_for(name, username, password, token=token)
    return (yield from login(conn, mechanism))


def quit(conn: Connection) -> Procedure[Reply | None]:
    """Send QUIT and read the 221; ``None`` if the server closed without it."""
    yield from _write(conn, conn.send(Quit()))
    event = yield from read_event(conn)
    return event if isinstance(event, Reply) else None


@final
@dataclass(frozen=True, slots=True)
class RecipientResult:
    """What happened to one recipient.

    Attributes:
        recipient: the address as given.
        reply: the reply that settled its fate: the reply to the end of data
            (in LMTP, this recipient's own) if the message got that far,
            otherwise the refusal that stopped it (of MAIL, of its RCPT, or of
            DATA).
        rcpt_reply: the reply to its RCPT, or ``None`` if RCPT was not sent
            (MAIL was refused first).
    """

    recipient: str
    reply: Reply
    rcpt_reply: Reply | None

    @property
    def status(self) -> Literal["accepted", "temporary", "permanent"]:
        """Whether the server took the message for this recipient.

        ``temporary`` (4yz) means trying again may work; ``permanent`` (5yz) not.
        """
        if self.reply.is_positive:
            return "accepted"
        return "temporary" if self.reply.is_transient else "permanent"


@final
@dataclass(frozen=True, slots=True)
class TransactionResult:
    """The whole truth about one mail transaction.

    Attributes:
        mail_reply: the reply to MAIL.
        recipients: one result per recipient, in the order given.
        data_reply: the reply to DATA (``354`` when content followed), or
            ``None`` if DATA was not sent.
        final_reply: the SMTP reply to the end of data (for LMTP, the first
            recipient's), or ``None`` if content was not sent.
        reset: True if RSET was sent to close the transaction left open (no
            recipient accepted, DATA or a chunk refused); its reply is not
            kept.
    """

    mail_reply: Reply
    recipients: tuple[RecipientResult, ...]
    data_reply: Reply | None
    final_reply: Reply | None
    reset: bool = False

    @property
    def accepted(self) -> tuple[str, ...]:
        """The recipients the message was delivered to."""
        return tuple(r.recipient for r in self.recipients if r.status == "accepted")

    @property
    def refused(self) -> dict[str, Reply]:
        """Each recipient not delivered to, with the reply that refused it."""
        return {r.recipient: r.reply for r in self.recipients if r.status != "accepted"}

    @property
    def delivered(self) -> bool:
        """True if at least one recipient was delivered to."""
        return any(r.status == "accepted" for r in self.recipients)


def _chunks(content: bytes | Iterable[bytes]) -> Iterable[bytes | memoryview]:
    if isinstance(content, (bytes, bytearray, memoryview)):
        view = memoryview(content)
        return (view[i : i + CONTENT_CHUNK] for i in range(0, len(view), CONTENT_CHUNK))
    return content


def send_mail(
    conn: Connection,
    sender: str,
    recipients: Sequence[str],
    content: bytes | Iterable[bytes],
    *,
    mail_params: Sequence[str] = (),
    rcpt_params: Sequence[str] = (),
    strict: bool = True,
    chunking: bool = False,
    pipelining: bool = True,
) -> Procedure[TransactionResult]:
    """Run one mail transaction: MAIL, RCPT for each recipient, then the content.

    With PIPELINING, MAIL, every RCPT and DATA go out in one write (RFC 2920
    §3.1) and their replies are read in order.  One refused recipient never
    stops the others (RFC 5321 Appendix D.1).  If the transaction is left
    open by a failure (no recipient accepted, DATA or a BDAT chunk refused),
    RSET closes it, so the connection is ready for the next one either way.

    ``content`` is the message as bytes, or an iterable of chunks (streamed:
    the whole message is never held).  Line endings are normalised to CRLF;
    DATA also dot-stuffs.  With ``chunking``, the content goes in BDAT chunks
    (RFC 3030) instead of DATA: pipelined back to back when the server offers
    PIPELINING, one round trip each otherwise.  ``BODY=BINARYMIME`` in
    ``mail_params`` needs ``chunking`` and sends the content byte for byte.
    ``pipelining=False`` waits for each reply even when the server offers
    PIPELINING (for servers that offer it but mishandle it, and for testing).

    Returns:
        A :class:`TransactionResult`; negative replies are reported there,
        not raised.

    Raises:
        LocalProtocolError: a command is invalid or not allowed (before any
            byte of the transaction is written), or ``recipients`` is empty.
        ServerDisconnected / RemoteProtocolError: from the server's side,
            before the end of the message was sent (it was not delivered).
        OutcomeUnknown: the end of the message was sent, and the connection
            failed or timed out before every verdict came: it may have been
            delivered.
    """
    if isinstance(recipients, str):
        raise TypeError("recipients must be a sequence of addresses, not one str")
    mail = Mail(sender, tuple(mail_params), strict=strict)
    rcpts = [Rcpt(r, tuple(rcpt_params), strict=strict) for r in recipients]
    return (
        yield from transaction(conn, mail, rcpts, content, chunking=chunking, pipelining=pipelining)
    )


def transaction(
    conn: Connection,
    mail: BaseCommand,
    rcpts: Sequence[BaseCommand],
    content: bytes | Iterable[bytes],
    *,
    chunking: bool = False,
    pipelining: bool = True,
) -> Procedure[TransactionResult]:
    """:func:`send_mail` with the MAIL and RCPT commands already made.

    For callers that make their own: typed :class:`Mail` and :class:`Rcpt`,
    or, on a permissive connection, :class:`CommandLine` lines written as
    another client writes them (the smtplib facade).  Each RCPT's recipient
    is its ``recipient`` attribute, or a line's :meth:`CommandLine.path`.

    Raises:
        LocalProtocolError: no recipient, or BDAT without CHUNKING (before
            any byte is written), or a command the connection refuses.
    """
    if not rcpts:
        raise LocalProtocolError("a mail transaction needs at least one recipient")
    if chunking and not conn.extensions.chunking:
        raise LocalProtocolError("BDAT needs CHUNKING, which the server did not offer")
    group: list[BaseCommand] = [mail, *rcpts] if chunking else [mail, *rcpts, Data()]
    replies: list[Reply] = []  # MAIL's, then each RCPT's, then DATA's, as far as they go
    pipelining = pipelining and conn.extensions.pipelining
    if pipelining:
        replies = yield from _pipeline(conn, conn.send_many(group), len(group))
    else:
        for cmd in group:
            if cmd is not mail and not replies[0].is_positive:
                break
            if isinstance(cmd, Data) and not conn.accepted_recipients:
                break
            replies.append((yield from command(conn, cmd)))
            if conn.state is State.CLOSED:
                break
    data_reply = replies[-1] if len(replies) == len(rcpts) + 2 else None
    verdicts: list[Reply] = []
    if data_reply is not None and data_reply.is_intermediate:
        if conn.state is State.DATA_EMPTY or not replies[0].is_positive:
            # RFC 2920 §3.1: 354 with no recipient accepted; the end-of-data
            # marker goes alone, and the message is not sent.  Likewise after
            # a refused MAIL (a permissive connection follows a server that
            # answers the pipelined RCPT and DATA anyway: the recipients it
            # accepts belong to no transaction of ours).
            yield from _write(conn, conn.send(EndOfContent()), Stage.DATA_BLOCK)
            try:
                yield from _read_verdicts(conn, verdicts)
            except ServerDisconnected:
                verdicts = []  # the marker ended no message of ours: the close is its answer
        else:
            verdicts = yield from send_content(conn, content)
    elif chunking and conn.accepted_recipients and conn.state is State.RCPT:
        verdicts = yield from _send_chunks(conn, content, pipelining=pipelining)
    if replies[0].is_positive and conn.state in (
        State.MAIL,
        State.RCPT,
        State.BDAT,
        State.ABORTED,
    ):
        # Our transaction was left open.  (After a refused MAIL there is none
        # of ours: a permissive connection may follow a server out of step
        # into RCPT, and its caller decides, as smtplib's sendmail does.)
        yield from command(conn, Rset())
        return _result(conn, rcpts, replies, data_reply, verdicts, reset=True)
    return _result(conn, rcpts, replies, data_reply, verdicts)


def send_content(conn: Connection, content: bytes | Iterable[bytes]) -> Procedure[list[Reply]]:
    """After DATA drew 354: send the message and the end-of-data marker, read the verdicts.

    For faces that send DATA themselves.  The content is encoded as
    :func:`send_mail` encodes it (line endings made CRLF, dots stuffed,
    streamed in chunks).

    Returns:
        The reply to the end of data; in LMTP one per accepted recipient, in
        their order, unless a 421 ended them early (it stands for the rest).

    Raises:
        OutcomeUnknown: the marker was sent and the connection failed or
            timed out before every verdict came.
    """
    verdicts: list[Reply] = []
    if isinstance(content, bytes) and len(content) <= CONTENT_CHUNK:
        # Most messages: one chunk and the end marker in one write, inline.
        data = conn.send(Content(content)) + conn.send(EndOfContent())
        try:
            yield Write(data, Stage.DATA_BLOCK)
        except Exception:
            conn.connection_lost()
            raise
    else:
        yield from _write_content(conn, content)
    yield from _verdicts_or_unknown(conn, _read_verdicts(conn, verdicts), verdicts)
    return verdicts


def _pipeline(conn: Connection, data: bytes, count: int) -> Procedure[list[Reply]]:
    """Write the ``count`` commands of ``data`` in windows and read their replies.

    Each window ends at a line end; after writing one, the replies to the
    commands of the windows before it are read, so at most two windows of
    commands are ever ahead of the replies read (:data:`PIPELINE_WINDOW`).
    Stops at a 421: the server answers nothing more.
    """
    replies: list[Reply] = []
    written = answered_before = 0  # octets written; commands in the windows before the last
    if len(data) <= PIPELINE_WINDOW:  # the usual group: one write, inline
        try:
            yield Write(data)
        except Exception:
            conn.connection_lost()
            raise
        written = len(data)
    while written < len(data):
        end = len(data)
        if end - written > PIPELINE_WINDOW:
            # A line end is always inside a window: no command line is longer
            # than MAX_COMMAND_LINE, far below PIPELINE_WINDOW.
            end = data.rfind(b"\r\n", written, written + PIPELINE_WINDOW) + 2
        yield from _write(conn, data[written:end])
        while len(replies) < answered_before:
            replies.append((yield from read_reply(conn)))
            if conn.state is State.CLOSED:
                return replies  # 421: the rest of the group is not written
        answered_before += data.count(b"\r\n", written, end)
        written = end
    while len(replies) < count:
        # Replies already buffered (the usual case after the first read) are
        # taken without a read_reply generator each: engine-only callgrind,
        # 306 k instructions a message before these fast paths.
        event = conn.next_event()
        if type(event) is Reply:
            replies.append(event)
        else:  # NEED_DATA (a close is only found by reading, in read_reply)
            replies.append((yield from read_reply(conn)))
        if conn.state is State.CLOSED:
            break  # 421: the server is going away and answers nothing more
    return replies


def _read_verdicts(conn: Connection, verdicts: list[Reply]) -> Procedure[None]:
    """Read the reply to the end of the message (LMTP: one per accepted recipient).

    Each goes into ``verdicts`` as it arrives, so the caller knows how far it got.
    """
    for _ in conn.accepted_recipients if conn.lmtp else (None,):
        verdicts.append((yield from read_reply(conn)))
        if conn.state is State.CLOSED:
            break


def _verdicts_or_unknown(
    conn: Connection, reading: Procedure[None], verdicts: list[Reply], skip: int = 0
) -> Procedure[None]:
    """Run ``reading`` (the replies after the end of the message); a failure is ``OutcomeUnknown``.

    Once the end-of-data marker is written, the server may take the message
    whatever happens to the connection afterwards: a timeout, a close or a
    broken reply here leaves the outcome unknown, and saying "failed" would
    invite a retry that delivers twice.  ``verdicts`` holds the replies read
    so far (in LMTP, one per recipient, in order), after ``skip`` replies to
    pipelined BDAT chunks.
    """
    accepted = conn.accepted_recipients  # taken now: the verdict ends the transaction
    try:
        yield from reading
    except (OSError, RemoteProtocolError) as exc:  # StageTimeout and SSLError are OSErrors
        conn.connection_lost()
        told = max(len(verdicts) - skip, 0) if conn.lmtp else 0
        told_of = zip(accepted, verdicts[skip:], strict=False)  # LMTP: those that came
        delivered = tuple(r for r, v in told_of if v.is_positive)
        raise OutcomeUnknown(exc, delivered, accepted[told:]) from exc


def _send_chunks(
    conn: Connection, content: bytes | Iterable[bytes], *, pipelining: bool
) -> Procedure[list[Reply]]:
    """Send the content as BDAT chunks; return the verdicts, or the refusal of a chunk."""
    unanswered = 0
    held: bytes | memoryview | None = None
    for chunk in _chunks(content):
        if held is not None:
            yield from _write(conn, conn.send(Bdat(held)), Stage.DATA_BLOCK)
            if not pipelining:
                reply = yield from read_reply(conn)
                if not reply.is_positive:
                    return [reply]
            else:
                unanswered += 1
        held = chunk
    last = conn.send(Bdat(b"" if held is None else held, last=True))
    yield from _write(conn, last, Stage.DATA_BLOCK)
    replies: list[Reply] = []  # those to the chunks before the last, then the verdicts
    yield from _verdicts_or_unknown(
        conn, _read_chunk_replies(conn, unanswered, replies), replies, unanswered
    )
    refusal = next((r for r in replies[:unanswered] if not r.is_positive), None)
    if len(replies) <= unanswered:  # a 421 to a chunk ended it
        return [replies[-1]]
    return [refusal] if refusal is not None else replies[unanswered:]


def _read_chunk_replies(conn: Connection, unanswered: int, replies: list[Reply]) -> Procedure[None]:
    """Read the replies to the ``unanswered`` pipelined chunks, then the verdicts."""
    for _ in range(unanswered):
        replies.append((yield from read_reply(conn)))
        if conn.state is State.CLOSED:
            return
    yield from _read_verdicts(conn, replies)


def _write_content(conn: Connection, content: bytes | Iterable[bytes]) -> Procedure[None]:
    """Content in chunks (one chunk fits in :func:`send_content`'s own single write)."""
    held = b""
    for chunk in _chunks(content):
        if held:
            yield from _write(conn, held, Stage.DATA_BLOCK)
        held = conn.send(Content(chunk))
    # The last chunk and the end-of-data marker go out in one write.
    yield from _write(conn, held + conn.send(EndOfContent()), Stage.DATA_BLOCK)


def _recipient(rcpt: BaseCommand) -> str:
    if isinstance(rcpt, CommandLine):
        return rcpt.path()
    return cast(Rcpt, rcpt).recipient


def _result(
    conn: Connection,
    rcpts: Sequence[BaseCommand],
    replies: list[Reply],
    data_reply: Reply | None,
    verdicts: list[Reply],
    *,
    reset: bool = False,
) -> TransactionResult:
    mail_reply = replies[0]
    # LMTP: one verdict per accepted RCPT, in their order (RFC 2033 §4.2);
    # taken by position, so a recipient given twice gets each of its own.
    taken = 0
    results = []
    for index, rcpt_command in enumerate(rcpts, start=1):
        recipient = _recipient(rcpt_command)
        rcpt_reply = replies[index] if index < len(replies) else None
        reply: Reply
        if not mail_reply.is_positive:
            reply = mail_reply  # whatever came after it, no message of ours went anywhere
        elif rcpt_reply is None:
            reply = replies[-1]  # MAIL refused, or a 421 before this RCPT was answered
        elif not rcpt_reply.is_positive:
            reply = rcpt_reply
        elif verdicts:
            if conn.lmtp:
                # Fewer verdicts than recipients: a 421 ended them, and is the last.
                reply = verdicts[min(taken, len(verdicts) - 1)]
                taken += 1
            else:
                reply = verdicts[0]
        elif data_reply is not None:
            reply = data_reply  # DATA refused: the message went nowhere
        else:
            reply = replies[-1]  # a 421 to a later command
        results.append(RecipientResult(recipient, reply, rcpt_reply))
    final = verdicts[0] if verdicts else None
    return TransactionResult(mail_reply, tuple(results), data_reply, final, reset)
