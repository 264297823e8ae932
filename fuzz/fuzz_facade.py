"""Harness ``facade``: ``smtpclient.SMTP``/``LMTP`` call sequences against arbitrary server bytes.

The smtplib facade is driven like an application would drive ``smtplib``: the
input picks SMTP or LMTP, how the session is opened (``SMTP(host)``, or
``SMTP()`` then ``connect()``; LMTP optionally over a Unix socket path), a
reply timeout or none, a trace hook or debug output (written to a discarded
``sys.stderr``), and a sequence of calls from ``OPS``: ``sendmail`` (1-3
recipients, one as a plain ``str``; ``str`` or ``bytes`` message; MAIL/RCPT
options; a non-ASCII recipient), ``send_message`` (plain, Bcc, Resent-,
international, no recipient), ``ehlo``, ``helo``, ``ehlo_or_helo_if_needed``,
``mail``, ``rcpt``, ``data``, ``docmd`` with command lines from ``LINES``
(whole command lines, lower case, CR/LF/NUL injection, non-ASCII, a long
line), ``putcmd`` + ``getreply``, ``send`` + ``getreply`` with raw bytes from
``RAW``, ``getreply``, ``noop``, ``rset``, ``starttls`` (the handshake fails
with ``ssl.SSLError``, or "succeeds" and the rest of the server's bytes
count as decrypted), ``login``, ``auth`` with a custom ``authobject``,
``verify``, ``expn``, ``help``, ``quit``, a ``with`` block's exit (with or
without an exception in flight), a new ``connect``, ``close``, and reading
``esmtp_features``.

No real socket is made: ``smtpclient.socket`` (looked up at call time by the
facade) is replaced for the call of :func:`check` by a module-like
:class:`_Net` whose ``create_connection``/``socket`` return an in-memory
:class:`_Socket`.  Its ``recv`` hands out the server's bytes cut at the
fuzzer's split points (at most ``n`` bytes per ``recv(n)``), then ``b""``
(end of file) or ``TimeoutError`` (a silent server) for ever; ``sendall``
records what the client wrote, and where the server's stream was when it did.

INVARIANT: four parts, each named (``fuzz/run.py facade --skip NAME`` turns one off):

* ``allowed-exceptions``: the only exceptions that escape a facade call are
  ``smtpclient.SMTPException`` (an ``OSError``), ``OSError`` (``TimeoutError``,
  ``ssl.SSLError`` included), ``ValueError`` for CR/LF/NUL in a command
  argument (smtplib's "prohibited newline/NUL" message), and
  ``UnicodeEncodeError`` when the call's arguments were not ASCII (smtplib
  raises it too without SMTPUTF8).  Anything else (``AssertionError`` from the
  library, ``binascii.Error``, the engine's ``LocalProtocolError``,
  ``RemoteProtocolError``, ``LocalSASLError``, ``RemoteSASLError``,
  ``TypeError``, ``KeyError``, ``IndexError``, ``RecursionError``...) is a
  finding.  ``--skip allowed-exceptions:NAME`` (``NAME`` the class's
  ``__qualname__`` or ``module.qualname``, e.g. ``binascii.Error``) lets that
  one type through and keeps checking the others.
* ``no-false-success``: ``sendmail``/``send_message`` return normally only if,
  during that call, the client wrote an end of message (``CRLF.CRLF`` after a
  ``DATA`` line, or the last byte of a ``BDAT ... LAST`` chunk) and the server
  handed out, after that write, at least one complete reply line starting
  with a 2yz code and not a continuation (in LMTP: one 2yz per-recipient
  reply).  A reply the server sent before the message ended cannot be its
  verdict.
* ``no-hang``: no facade call makes more than ``SOCKET_CALL_LIMIT`` ``recv``/
  ``sendall`` calls; a silent server (``TimeoutError``) or an end of file must
  surface as an exception.
* ``closed-after-error``: after ``SMTPServerDisconnected``, ``smtp.sock is
  None`` (for a constructor that raised it: every socket it made is closed).

Input layout: byte 0: flags -- bit 0 LMTP, bit 1 end of file when the
server's bytes run out (else a stall: ``TimeoutError``), bit 2 connect
through the constructor (else ``SMTP()`` then ``connect()``), bit 3 a reply
timeout of 30 s (else none), bits 4-5 observer (0 none, 1 a ``trace`` hook,
2 ``debuglevel`` 1, 3 ``debuglevel`` 2), bit 6 LMTP over a Unix socket path;
byte 1, low 5 bits: number of calls P (0: ``DEFAULT_PLAN``); byte 2, low 5
bits: number of split points N; then P pairs (opcode, argument byte) with the
opcode taken modulo ``len(OPS)``, N little-endian 16-bit split offsets; the
rest is the server's byte stream.
"""

from __future__ import annotations

import contextlib
import email.message
import email.policy
import errno
import io
import re
import socket as _socket
import ssl
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import smtpclient
from fuzz._common import Header, pack_splits, split_at
from smtpclient import LMTP, SMTP, SMTPServerDisconnected

__all__ = ["DEFAULT_PLAN", "MAX_LEN", "OPS", "SKIP", "check", "make_input", "reply_ends"]

MAX_LEN = 4096

#: Invariants a fuzzing run may skip (``fuzz/run.py --skip NAME``) to get past
#: a failure already reported; the seed replay in the tests never skips any.
SKIP: set[str] = set()

#: More ``recv``/``sendall`` calls than this in one facade call is a hang.
SOCKET_CALL_LIMIT = 10_000

HOST = "fuzz.example"
UNIX_PATH = "/run/fuzz/lmtp.sock"
LOCAL_NAME = "client.example"
_DEFAULT_TIMEOUT: object = vars(_socket)["_GLOBAL_DEFAULT_TIMEOUT"]


# -- the fake network ------------------------------------------------------------------


class _Hang(BaseException):
    """Too many socket calls in one facade call (a BaseException: nothing swallows it)."""


class _Server:
    """The server's side: its bytes in reads, what the client wrote, and when."""

    def __init__(self, chunks: list[bytes], eof: bool) -> None:
        self.stream = b"".join(chunks)
        self._chunks = chunks
        self._index = 0
        self._offset = 0
        self.eof = eof
        self.pos = 0  # server bytes handed out so far
        self.sent = bytearray()  # every byte the client wrote
        self.writes: list[tuple[int, int]] = []  # (len(sent) after a write, pos at the write)
        self.calls = 0  # recv/sendall calls in the current facade call
        self.sockets: list[_Socket] = []

    def _tick(self) -> None:
        self.calls += 1
        if self.calls > SOCKET_CALL_LIMIT:
            raise _Hang

    def recv(self, size: int) -> bytes:
        self._tick()
        if self._index >= len(self._chunks):
            if self.eof:
                return b""
            raise TimeoutError("timed out")  # socket.timeout
        chunk = self._chunks[self._index]
        piece = chunk[self._offset : self._offset + max(size, 0)]
        self._offset += len(piece)
        if self._offset >= len(chunk):
            self._index += 1
            self._offset = 0
        self.pos += len(piece)
        return piece

    def write(self, data: bytes) -> None:
        self._tick()
        self.sent += data
        self.writes.append((len(self.sent), self.pos))

    def pos_at(self, client_offset: int) -> int:
        """Where the server's stream was when the client wrote byte ``client_offset - 1``."""
        for after, pos in self.writes:
            if after >= client_offset:
                return pos
        raise AssertionError(f"no write reached client offset {client_offset}")


class _Socket:
    """An in-memory stand-in for a connected socket (and for the TLS one after STARTTLS)."""

    def __init__(self, server: _Server, timeout: float | None = None) -> None:
        self.server = server
        self.timeout = timeout
        self.closed = False
        server.sockets.append(self)

    def _check_open(self) -> None:
        if self.closed:
            raise OSError(errno.EBADF, "Bad file descriptor")

    def recv(self, size: int) -> bytes:
        self._check_open()
        return self.server.recv(size)

    def sendall(self, data: bytes) -> None:
        self._check_open()
        self.server.write(bytes(data))

    def send(self, data: bytes) -> int:
        self.sendall(data)
        return len(data)

    def settimeout(self, value: float | None) -> None:
        self._check_open()
        self.timeout = value

    def gettimeout(self) -> float | None:
        return self.timeout

    def connect(self, address: object) -> None:
        self._check_open()

    def close(self) -> None:
        self.closed = True

    def fileno(self) -> int:
        return -1 if self.closed else 3

    def getpeername(self) -> tuple[str, int]:
        self._check_open()
        return ("192.0.2.25", 25)


class _Net(types.ModuleType):
    """What the facade uses of the ``socket`` module, making :class:`_Socket` objects."""

    AF_UNIX = 1
    SOCK_STREAM = 1
    _GLOBAL_DEFAULT_TIMEOUT = _DEFAULT_TIMEOUT
    gaierror = _socket.gaierror

    def __init__(self, server: _Server) -> None:
        super().__init__("socket")
        self.server = server

    def create_connection(
        self,
        address: tuple[str, int],
        timeout: object = _DEFAULT_TIMEOUT,
        source_address: object = None,
    ) -> _Socket:
        return _Socket(self.server, timeout if isinstance(timeout, (int, float)) else None)

    def socket(self, family: int = -1, type: int = -1) -> _Socket:
        return _Socket(self.server)

    def getfqdn(self, name: str = "") -> str:
        return LOCAL_NAME

    def gethostname(self) -> str:
        return "client"

    def gethostbyname(self, name: str) -> str:
        return "192.0.2.1"


class _TLSContext(ssl.SSLContext):
    """A context whose handshake fails with ``ssl.SSLError``, or "succeeds" in the clear."""

    handshake_ok = False
    server: _Server | None = None

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        if not self.handshake_ok or self.server is None:
            raise ssl.SSLError("fuzz: the fake socket cannot do TLS")
        sock = args[0] if args else kwargs["sock"]
        if isinstance(sock, _Socket):
            sock.closed = True  # a real wrap_socket detaches the plain socket
        return cast(ssl.SSLSocket, _Socket(self.server))


_FAILING_TLS = _TLSContext(ssl.PROTOCOL_TLS_CLIENT)
_PRETEND_TLS = _TLSContext(ssl.PROTOCOL_TLS_CLIENT)
_PRETEND_TLS.handshake_ok = True


class _Discard(io.TextIOBase):
    """``sys.stderr`` while the debug output runs."""

    def write(self, s: str) -> int:
        return len(s)


# -- what a session may call -----------------------------------------------------------

MESSAGE = (
    b"From: <sender@example.org>\r\nTo: <rcpt1@example.org>\r\nSubject: fuzz\r\n\r\n"
    b".a line with a leading dot\nbare LF\rbare CR\r\n.\r\nlast line"
)
#: ``sendmail``/``data`` messages (the last is not ASCII: UnicodeEncodeError, as smtplib).
MESSAGES: tuple[str | bytes, ...] = (
    MESSAGE,
    MESSAGE.decode(),
    b"",
    "Subject: caf\u00e9\r\n\r\nna\u00efve\r\n",
)
RECIPIENTS = ("rcpt1@example.org", "Rcpt Two <rcpt2@example.org>", "rcpt3@example.org")
MAIL_OPTIONS: tuple[tuple[str, ...], ...] = (
    (),
    ("BODY=8BITMIME",),
    ("SMTPUTF8",),
    ("RET=HDRS", "ENVID=QQ314159"),
)
SENDERS = (
    "sender@example.org",
    "",
    "Sender <sender@example.org>",
    "s\u00e9nder@example.org",
    "a@example.org>\r\nRSET",
    "<>",
    "a\x00b@example.org",
    '"quoted local"@example.org',
)
ADDRESS_OPTIONS: tuple[tuple[str, ...], ...] = (
    (),
    ("SIZE=242",),
    ("SMTPUTF8",),
    ("BODY=8BITMIME",),
    ("NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;x@example.org"),
    ("X\r\nY",),
    ("X-\u00e9",),
    ("NOTIFY=NEVER",),
)
#: ``docmd``/``putcmd`` arguments: ``(cmd, args)``.
LINES: tuple[tuple[str, str], ...] = (
    ("NOOP", ""),
    ("noop", ""),
    ("RSET", ""),
    ("QUIT", ""),
    ("DATA", ""),
    ("data", ""),
    ("MAIL", "FROM:<sender@example.org>"),
    ("mail from:<sender@example.org>", ""),
    ("RCPT", "TO:<rcpt1@example.org>"),
    ("rcpt to:<rcpt2@example.org>", ""),
    ("EHLO", LOCAL_NAME),
    ("HELO", LOCAL_NAME),
    ("LHLO", LOCAL_NAME),
    ("STARTTLS", ""),
    ("AUTH", "PLAIN AHVzZXIAcGFzcw=="),
    ("AUTH", "LOGIN"),
    ("BDAT", "5 LAST"),
    ("VRFY", "postmaster"),
    ("EXPN", "list"),
    ("HELP", ""),
    ("XYZZY", "plugh"),
    ("NOOP", "a\r\nRSET"),
    ("NOOP\n", ""),
    ("NOOP", "x\x00y"),
    ("VRFY", "\u00e9"),
    ("", ""),
    (" ", ""),
    ("NOOP", " "),
    ("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>", ""),
    ("DATA", "x"),
    ("NOOP", "x" * 2100),
    ("ETRN", "example.org"),
)
#: ``send`` arguments (then ``getreply``).
RAW: tuple[str | bytes, ...] = (
    b"NOOP\r\n",
    b"RSET\r\n",
    b"DATA\r\n",
    b"a\r\n.\r\n",
    b".\r\n",
    b"NOOP",
    "noop\r\n",
    b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n",
    b"",
    "\u00e9\r\n",
    b"QUIT\r\n",
    b"BDAT 3 LAST\r\nabc",
)
NAMES = ("", LOCAL_NAME, "b\u00fccher.example", "[127.0.0.1]", "a\r\nb", "x y", "[IPv6:::1]", "-")
ADDRESSES = ("postmaster", "User <u@example.org>", "\u00e9", "a\r\nb", "", "a b", "<>", "x" * 600)
HELP_TOPICS = ("", "MAIL", "a\nb", "\u00e9")
CREDENTIALS = (("user", "pass"), ("us\u00e9r", "p\u00e4ss\u00e9"), ("", ""), ("user", "a\r\nb"))
MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2", "X-FUZZ", "pl\u00e4in", "A B", "PLAIN\r\n")
AUTH_RESPONSES: tuple[str | bytes | None, ...] = (b"\x00user\x00pass", "us\u00e9r", None, b"")
CONNECT_HOSTS = (HOST, f"{HOST}:2525", f"{HOST}:x", f"[{HOST}]:25")


def _email(headers: Sequence[tuple[str, str]], body: str = ".dot\nline\n") -> email.message.Message:
    msg = email.message.EmailMessage(policy=email.policy.SMTP)
    for name, value in headers:
        msg[name] = value
    msg.set_content(body)
    return msg


#: ``send_message`` messages, and whether their addresses are ASCII.
EMAILS: tuple[tuple[email.message.Message, bool], ...] = (
    (
        _email([("From", "sender@example.org"), ("To", "rcpt1@example.org, rcpt2@example.org")]),
        True,
    ),
    (
        _email(
            [
                ("From", "Sender <sender@example.org>"),
                ("To", "rcpt1@example.org"),
                ("Cc", "rcpt2@example.org"),
                ("Bcc", "hidden@example.org"),
            ]
        ),
        True,
    ),
    (
        _email(
            [
                ("From", "sender@example.org"),
                ("To", "rcpt1@example.org"),
                ("Resent-Date", "Mon, 23 Nov 2026 10:00:00 +0000"),
                ("Resent-From", "resender@example.org"),
                ("Resent-To", "rcpt3@example.org"),
                ("Resent-Bcc", "hidden@example.org"),
            ]
        ),
        True,
    ),
    (
        _email(
            [("From", "s\u00e9nder@example.org"), ("To", "\u7528\u6237@example.org")], "caf\u00e9\n"
        ),
        False,
    ),
    (_email([("From", "sender@example.org"), ("Subject", "nobody")]), True),
)


class _Inner(Exception):
    """The exception raised inside a ``with`` block."""


def _non_ascii(*values: object) -> bool:
    for value in values:
        if isinstance(value, str) and not value.isascii():
            return True
        if isinstance(value, (tuple, list)) and _non_ascii(*value):
            return True
    return False


def _pick(table: Sequence[Any], arg: int) -> Any:
    return table[arg % len(table)]


class Call(NamedTuple):
    """One facade call: what it is, how to make it, and whether its arguments are ASCII."""

    label: str
    run: Callable[[SMTP], object]
    non_ascii: bool = False
    sends_mail: bool = False


def _sendmail(arg: int) -> Call:
    count = arg & 0x03
    recipients: list[str] = list(RECIPIENTS[: count + 1 if count < 3 else 1])
    if arg & 0x80:
        recipients[-1] = "\u7528\u6237@example.org"
    to: str | list[str] = recipients[0] if count == 3 else recipients
    msg = _pick(MESSAGES, arg >> 2)
    mail_options = _pick(MAIL_OPTIONS, arg >> 4)
    rcpt_options: tuple[str, ...] = ("NOTIFY=SUCCESS,FAILURE",) if arg & 0x40 else ()
    return Call(
        f"sendmail(to={to!r}, msg={msg!r:.30}, mail_options={mail_options}, "
        f"rcpt_options={rcpt_options})",
        lambda s: s.sendmail("sender@example.org", to, msg, mail_options, rcpt_options),
        _non_ascii(to, msg),
        sends_mail=True,
    )


def _send_message(arg: int) -> Call:
    index = arg % len(EMAILS)
    msg, ascii_only = EMAILS[index]
    explicit = bool(arg & 0x80)
    from_addr = "envelope@example.org" if explicit else None
    to_addrs = ["rcpt1@example.org", "rcpt3@example.org"] if explicit else None
    return Call(
        f"send_message(EMAILS[{index}], from_addr={from_addr!r}, to_addrs={to_addrs!r})",
        lambda s: s.send_message(msg, from_addr, to_addrs),
        not ascii_only,
        sends_mail=True,
    )


def _mail(arg: int) -> Call:
    sender, options = _pick(SENDERS, arg), _pick(ADDRESS_OPTIONS, arg >> 3)
    return Call(
        f"mail({sender!r}, {options})",
        lambda s: s.mail(sender, options),
        _non_ascii(sender, options),
    )


def _rcpt(arg: int) -> Call:
    rcpt, options = _pick(SENDERS, arg), _pick(ADDRESS_OPTIONS, arg >> 3)
    return Call(
        f"rcpt({rcpt!r}, {options})", lambda s: s.rcpt(rcpt, options), _non_ascii(rcpt, options)
    )


def _data(arg: int) -> Call:
    msg = _pick(MESSAGES, arg)
    return Call(f"data({msg!r:.30})", lambda s: s.data(msg), _non_ascii(msg))


def _docmd(arg: int) -> Call:
    cmd, args = _pick(LINES, arg)
    return Call(
        f"docmd({cmd!r:.60}, {args!r:.60})", lambda s: s.docmd(cmd, args), _non_ascii(cmd, args)
    )


def _putcmd(arg: int) -> Call:
    cmd, args = _pick(LINES, arg)

    def run(s: SMTP) -> object:
        s.putcmd(cmd, args)
        return s.getreply()

    return Call(f"putcmd({cmd!r:.60}, {args!r:.60}) + getreply()", run, _non_ascii(cmd, args))


def _send(arg: int) -> Call:
    raw = _pick(RAW, arg)

    def run(s: SMTP) -> object:
        s.send(raw)
        return s.getreply()

    return Call(f"send({raw!r}) + getreply()", run, _non_ascii(raw))


def _starttls(arg: int) -> Call:
    context = _PRETEND_TLS if arg & 1 else _FAILING_TLS
    what = "a pretended handshake" if arg & 1 else "a failing handshake"
    return Call(f"starttls(context=<{what}>)", lambda s: s.starttls(context=context))


def _login(arg: int) -> Call:
    user, password = _pick(CREDENTIALS, arg)
    initial = not arg & 0x80
    return Call(
        f"login({user!r}, {password!r}, initial_response_ok={initial})",
        lambda s: s.login(user, password, initial_response_ok=initial),
        _non_ascii(user, password),
    )


def _auth(arg: int) -> Call:
    mechanism = _pick(MECHANISMS, arg)
    response = AUTH_RESPONSES[(arg >> 3) % len(AUTH_RESPONSES)]
    initial = not arg & 0x20
    calls: list[bytes | None] = []

    def authobject(challenge: bytes | None = None) -> str | bytes | None:
        calls.append(challenge)
        return response

    return Call(
        f"auth({mechanism!r}, <authobject returning {response!r}>, initial_response_ok={initial})",
        lambda s: s.auth(mechanism, authobject, initial_response_ok=initial),
        _non_ascii(mechanism, response),
    )


def _with(arg: int) -> Call:
    def run(s: SMTP) -> None:
        if arg & 1:
            with contextlib.suppress(_Inner), s:
                raise _Inner
        else:
            with s:
                pass

    return Call(f"with-block exit{' with an exception' if arg & 1 else ''}", run)


def _features(s: SMTP) -> object:
    return (dict(s.esmtp_features), s.has_extn("size"), s.does_esmtp)


def _one(method: str, table: Sequence[str]) -> Callable[[int], Call]:
    """A call of ``method`` with one argument from ``table``."""

    def make(arg: int) -> Call:
        value = _pick(table, arg)
        return Call(
            f"{method}({value!r:.60})", lambda s: getattr(s, method)(value), _non_ascii(value)
        )

    return make


def _connect_call(host: str) -> Call:
    return Call(f"connect({host!r})", lambda s: s.connect(host))


OPS: tuple[tuple[str, Callable[[int], Call]], ...] = (
    ("EHLO", _one("ehlo", NAMES)),
    ("HELO", _one("helo", NAMES)),
    ("SENDMAIL", _sendmail),
    ("SEND_MESSAGE", _send_message),
    ("MAIL", _mail),
    ("RCPT", _rcpt),
    ("DATA", _data),
    ("DOCMD", _docmd),
    ("PUTCMD", _putcmd),
    ("SEND", _send),
    ("GETREPLY", lambda a: Call("getreply()", lambda s: s.getreply())),
    ("NOOP", lambda a: Call("noop()", lambda s: s.noop())),
    ("RSET", lambda a: Call("rset()", lambda s: s.rset())),
    ("STARTTLS", _starttls),
    ("LOGIN", _login),
    ("AUTH", _auth),
    ("VERIFY", _one("verify", ADDRESSES)),
    ("EXPN", _one("expn", ADDRESSES)),
    ("HELP", _one("help", HELP_TOPICS)),
    ("QUIT", lambda a: Call("quit()", lambda s: s.quit())),
    ("WITH", _with),
    ("CONNECT", lambda a: _connect_call(_pick(CONNECT_HOSTS, a))),
    ("CLOSE", lambda a: Call("close()", lambda s: s.close())),
    ("FEATURES", lambda a: Call("esmtp_features", _features)),
    (
        "EHLO_OR_HELO",
        lambda a: Call("ehlo_or_helo_if_needed()", lambda s: s.ehlo_or_helo_if_needed()),
    ),
)
OP_INDEX = {name: index for index, (name, _) in enumerate(OPS)}
DEFAULT_PLAN: tuple[tuple[str, int], ...] = (("EHLO", 1), ("SENDMAIL", 0), ("QUIT", 0))


# -- the invariants --------------------------------------------------------------------


def _allowed(exc: Exception, non_ascii: bool) -> bool:
    if isinstance(exc, OSError):  # SMTPException, TimeoutError, ssl.SSLError included
        return True
    if type(exc) is UnicodeEncodeError:
        return non_ascii
    if type(exc) is ValueError:
        return re.search(r"prohibited (?:newline|NUL) character", str(exc)) is not None
    kind = type(exc)
    return (
        "allowed-exceptions" in SKIP
        or f"allowed-exceptions:{kind.__qualname__}" in SKIP
        or f"allowed-exceptions:{kind.__module__}.{kind.__qualname__}" in SKIP
    )


def _judge(call: Call, exc: Exception, smtp: SMTP | None, server: _Server) -> None:
    """The call raised ``exc``: was it allowed, and is the session closed if it must be?"""
    if isinstance(exc, SMTPServerDisconnected) and "closed-after-error" not in SKIP:
        if smtp is not None:
            assert smtp.sock is None, (
                f"closed-after-error: {call.label} raised SMTPServerDisconnected({exc}) "
                f"but smtp.sock is still {smtp.sock!r}"
            )
        else:
            assert all(s.closed for s in server.sockets), (
                f"closed-after-error: {call.label} raised SMTPServerDisconnected({exc}) "
                "and left a socket open"
            )
    if not _allowed(exc, call.non_ascii):
        kind = type(exc)
        raise AssertionError(
            f"allowed-exceptions: {call.label} raised {kind.__module__}.{kind.__qualname__}: {exc}"
        ) from exc


def _end_of_message(sent: bytes) -> int:
    """Offset just past the last end of message the client wrote in ``sent`` (-1: none)."""
    pos, found = 0, -1
    while pos < len(sent):
        eol = sent.find(b"\r\n", pos)
        if eol < 0:
            break
        verb, _, rest = sent[pos:eol].partition(b" ")
        pos = eol + 2
        verb = verb.upper()
        if verb == b"DATA" and not rest:
            end = sent.find(b"\r\n.\r\n", eol)
            if end < 0:
                break
            pos = found = end + 5
        elif verb == b"BDAT":
            words = rest.split()
            if not words or not words[0].isdigit():
                continue
            pos += int(words[0])
            if len(words) > 1 and words[1].upper() == b"LAST" and pos <= len(sent):
                found = pos
    return found


_LINE = re.compile(rb"([^\r\n]*)[\r\n]")
_POSITIVE = re.compile(rb"2[0-9][0-9](?!-)")


def _check_success(call: Call, server: _Server, start: int, result: object) -> None:
    """``sendmail``/``send_message`` returned: the message ended and a 2yz came after."""
    if "no-false-success" in SKIP:
        return
    marker = _end_of_message(bytes(server.sent[start:]))
    assert marker >= 0, (
        f"no-false-success: {call.label} returned {result!r} but wrote no end of message; "
        f"it wrote {bytes(server.sent[start:])!r:.600}"
    )
    at = server.pos_at(start + marker)
    for match in _LINE.finditer(server.stream, at):
        if match.end() > server.pos:
            break
        if match.end() > at and _POSITIVE.match(match[1]):
            return
    raise AssertionError(
        f"no-false-success: {call.label} returned {result!r}, but no 2yz reply line was read "
        f"after the end of message (server offset {at}, read up to {server.pos}: "
        f"{server.stream[at : server.pos]!r:.300})"
    )


# -- running a session -----------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """What the input's header chose."""

    lmtp: bool
    eof: bool
    constructor: bool
    timeout: bool
    observer: int
    unix: bool
    plan: tuple[tuple[int, int], ...]


def _run_call(call: Call, smtp: SMTP, server: _Server) -> None:
    server.calls = 0
    start = len(server.sent)
    try:
        result = call.run(smtp)
    except _Hang as hang:
        if "no-hang" in SKIP:
            return
        raise AssertionError(
            f"no-hang: {call.label} made more than {SOCKET_CALL_LIMIT} socket calls"
        ) from hang
    except Exception as exc:
        _judge(call, exc, smtp, server)
        return
    if call.sends_mail:
        _check_success(call, server, start, result)


def _session(options: Options, server: _Server) -> None:
    cls = LMTP if options.lmtp else SMTP
    host = UNIX_PATH if options.lmtp and options.unix else HOST
    timeout: Any = 30.0 if options.timeout else _DEFAULT_TIMEOUT
    calls = [OPS[op % len(OPS)][1](arg) for op, arg in options.plan]
    if options.constructor:
        opening = Call(f"{cls.__name__}({host!r})", lambda s: None)
        server.calls = 0
        try:
            smtp = cls(host, local_hostname=LOCAL_NAME, timeout=timeout)
        except _Hang as hang:
            if "no-hang" in SKIP:
                return
            raise AssertionError(
                f"no-hang: {opening.label} made more than {SOCKET_CALL_LIMIT} socket calls"
            ) from hang
        except Exception as exc:
            _judge(opening, exc, None, server)
            return
    else:
        smtp = cls(local_hostname=LOCAL_NAME, timeout=timeout)
        calls.insert(0, _connect_call(host))
    if options.observer == 1:
        smtp.trace = lambda direction, data: None
    elif options.observer > 1:
        smtp.set_debuglevel(options.observer - 1)
    for call in calls:
        _run_call(call, smtp, server)


def parse(data: bytes) -> tuple[Options, bytes, list[int]]:
    """Split a fuzz input into its options, the server's bytes and the raw split points."""
    header = Header(data)
    flags = header.byte()
    steps = header.byte() & 0x1F
    splits = header.byte() & 0x1F
    plan = tuple((header.byte(), header.byte()) for _ in range(steps)) or tuple(
        (OP_INDEX[name], arg) for name, arg in DEFAULT_PLAN
    )
    raw_points = header.splits(splits)
    options = Options(
        lmtp=bool(flags & 0x01),
        eof=bool(flags & 0x02),
        constructor=bool(flags & 0x04),
        timeout=bool(flags & 0x08),
        observer=(flags >> 4) & 0x03,
        unix=bool(flags & 0x40),
        plan=plan,
    )
    return options, header.rest(), raw_points


def check(data: bytes) -> None:
    """Run one fuzz input; raise ``AssertionError`` if an invariant breaks."""
    options, payload, raw_points = parse(data)
    server = _Server(split_at(payload, raw_points), options.eof)
    saved = vars(smtpclient)["socket"]
    vars(smtpclient)["socket"] = _Net(server)
    _PRETEND_TLS.server = server
    try:
        if options.observer > 1:
            with contextlib.redirect_stderr(_Discard()):
                _session(options, server)
        else:
            _session(options, server)
    finally:
        vars(smtpclient)["socket"] = saved
        _PRETEND_TLS.server = None


def reply_ends(payload: bytes) -> list[int]:
    """Offsets just past each last line of a reply (``NNN text CRLF``): one reply per read."""
    return [m.end() for m in re.finditer(rb"(?m)^[0-9]{3}(?: [^\r\n]*)?\r\n", payload)]


def make_input(
    payload: bytes,
    *,
    plan: Sequence[tuple[str, int]] = (),
    lmtp: bool = False,
    eof: bool = True,
    constructor: bool = False,
    timeout: bool = False,
    observer: int = 0,
    unix: bool = False,
    splits: list[int] | None = None,
) -> bytes:
    """A fuzz input (for seed files); ``plan`` is ``(OPS name, argument byte)`` pairs.

    ``splits=None`` cuts ``payload`` after each reply (:func:`reply_ends`), as a
    server that answers each command in turn would send it; ``[]`` hands it out
    in one read.
    """
    flags = lmtp | eof << 1 | constructor << 2 | timeout << 3 | (observer & 0x03) << 4 | unix << 6
    steps = [(OP_INDEX[name], arg & 0xFF) for name, arg in plan[:31]]
    packed = pack_splits(reply_ends(payload) if splits is None else splits)
    return (
        bytes([flags, len(steps), packed[0]])
        + b"".join(bytes(step) for step in steps)
        + packed[1:]
        + payload
    )
