"""One ``smtpclient`` session: a connection driven stage by stage with the engine's procedures.

What the engine and the socket raise becomes a :class:`_Fail` with the exit
status and message the command reports.
"""

from __future__ import annotations

import contextlib
import email.utils
import ipaddress
import socket
import ssl
from typing import IO, TypeVar

from smtp_core import (
    Connection,
    Ehlo,
    Greeting,
    LocalProtocolError,
    OutcomeUnknown,
    Procedure,
    ProtocolError,
    RemoteProtocolError,
    RemoteSASLError,
    Reply,
    ReplyError,
    ServerDisconnected,
    State,
    TLSPolicy,
    TranscriptRecorder,
    procedures,
)
from transports._logging import chain, transcript_trace
from transports.sync import SyncDriver, connect

from ._args import _Options
from ._certs import _tls_report
from ._common import (
    EXIT_AUTH,
    EXIT_CONNECTION,
    EXIT_PROTOCOL,
    EXIT_TRANSACTION,
    EXIT_USAGE,
    _Fail,
    _Unknown,
    _version,
)
from ._display import _Display, _printable

__all__ = ["_Session", "_first_line", "_reply_text"]

T = TypeVar("T")


_TLS_POLICY: dict[str, TLSPolicy] = {
    "none": "none",
    "starttls": "opportunistic",
    "required": "required",
    "implicit": "required",
}


# -- the session -----------------------------------------------------------------------------


def _reply_text(reply: Reply | Greeting) -> str:
    return f"{reply.code} " + " / ".join(line.decode("utf-8", "replace") for line in reply.lines)


def _first_line(reply: Reply) -> str:
    return f"{reply.code} {_printable(reply.lines[0]) if reply.lines else ''}".rstrip()


def _local_name(sock: socket.socket) -> str:
    """This host's name if it is a domain, else the address literal of ``sock``."""
    name = socket.gethostname()
    if "." in name:
        with contextlib.suppress(LocalProtocolError):
            return Ehlo(name).name
    try:
        address = sock.getsockname()
    except OSError:
        return "localhost"
    if not isinstance(address, tuple):
        return "localhost"  # a Unix socket
    ip = ipaddress.ip_address(address[0].partition("%")[0])
    return f"[IPv6:{ip}]" if ip.version == 6 else f"[{ip}]"


_USABLE_FOR_QUIT = frozenset(
    {State.CONNECTED, State.REFUSED, State.READY, State.MAIL, State.RCPT, State.BDAT, State.ABORTED}
)


class _Session:
    """One connection, driven stage by stage with the engine's procedures."""

    def __init__(self, opts: _Options, out: IO[str], err: IO[str]) -> None:
        self.opts = opts
        self.out = out
        self.err = err
        self.display = _Display(out, suppress_data=opts.suppress_data)
        self.display.enabled = opts.show_transcript
        self.recorder: TranscriptRecorder | None = None
        if opts.record is not None:
            self.recorder = TranscriptRecorder(
                {
                    "client": f"smtpclient {_version()}",
                    "server": str(opts.target),
                    "protocol": "LMTP" if opts.lmtp else "SMTP",
                    "date": email.utils.formatdate(localtime=True),
                }
            )
        self.driver: SyncDriver | None = None
        self.conn = Connection(
            lmtp=opts.lmtp,
            tls_policy=_TLS_POLICY[opts.tls],
            tls_active=opts.tls == "implicit",
            auth_in_clear=opts.auth_in_clear,
        )
        self.context: ssl.SSLContext | None = None
        self.server_name = opts.tls_name or opts.target.host or "localhost"
        self.ehlo_name = opts.ehlo or ""

    # -- plumbing -------------------------------------------------------------------

    def trace(self, direction: str, data: bytes) -> None:
        if self.recorder is not None:
            self.recorder(direction, data)
        self.display(direction, data)

    def err_line(self, text: str) -> None:
        self.out.flush()
        self.err.write(f"smtpclient: {text}\n")
        self.err.flush()

    def run(self, stage: str, procedure: Procedure[T]) -> T:
        """Run ``procedure``; turn what it raises into a :class:`_Fail` for ``stage``."""
        assert self.driver is not None
        self.display.reset()
        try:
            return self.driver.run(procedure)
        except OutcomeUnknown as exc:  # not a failure: the message may have been delivered
            raise _Unknown(f"{stage}: {exc}", exc) from None
        except ServerDisconnected as exc:
            raise _Fail(EXIT_CONNECTION, f"{stage}: {exc}") from None
        except RemoteSASLError as exc:
            raise _Fail(EXIT_AUTH, f"authentication failed: {exc}") from None
        except RemoteProtocolError as exc:
            raise _Fail(EXIT_PROTOCOL, f"protocol error from the server ({stage}): {exc}") from None
        except ReplyError as exc:
            raise self._refused(stage, exc) from None
        except LocalProtocolError as exc:
            code = {"auth": EXIT_AUTH, "starttls": EXIT_CONNECTION}.get(stage, EXIT_TRANSACTION)
            if stage == "raw":
                code = EXIT_PROTOCOL
            hint = ""
            if stage == "auth" and not self.conn.tls_active and not self.opts.auth_in_clear:
                hint = " [use TLS (--tls starttls, required or implicit), or --auth-in-clear]"
            raise _Fail(code, f"{stage}: {exc}{hint}", polite=True) from None
        except ssl.SSLError as exc:
            raise self._tls_failure(exc) from None
        except TimeoutError:
            timeout = self.opts.timeout
            raise _Fail(EXIT_CONNECTION, f"{stage}: no reply within {timeout:g} s") from None
        except OSError as exc:
            raise _Fail(EXIT_CONNECTION, f"{stage}: {_os_error(exc)}") from None
        finally:
            self.display.flush()

    def _refused(self, stage: str, exc: ReplyError) -> _Fail:
        text = _reply_text(exc.reply)
        if self.conn.state is State.CLOSED and stage not in ("greeting", "starttls"):
            # The engine closed the connection on that reply (a 421, RFC 5321 §3.8):
            # at EHLO/LHLO or AUTH it is the same event as at MAIL, RCPT or the
            # message (exit 3), not a refusal of the name or of the credentials
            # (which would send the user looking in the wrong place).
            return _Fail(EXIT_CONNECTION, f"the server closed the session: {text}")
        if stage == "greeting":
            return _Fail(EXIT_CONNECTION, f"the server refused the session: {text}", polite=True)
        if stage == "starttls":
            return _Fail(EXIT_CONNECTION, f"STARTTLS refused: {text}", polite=True)
        if stage == "auth":
            return _Fail(EXIT_AUTH, f"authentication failed: {text}", polite=True)
        if stage == "ehlo":
            stage = "LHLO" if self.opts.lmtp else "EHLO and HELO"
        return _Fail(EXIT_TRANSACTION, f"{stage} refused: {text}", polite=True)

    def _tls_failure(self, exc: ssl.SSLError) -> _Fail:
        hint = ""
        if isinstance(exc, ssl.SSLCertVerificationError):
            hint = " (trust its CA with --cafile FILE, or look anyway with --no-tls-verify)"
        reason = getattr(exc, "verify_message", None) or exc.reason or str(exc)
        return _Fail(
            EXIT_CONNECTION, f"TLS handshake with {self.opts.target} failed: {reason}{hint}"
        )

    def tls_context(self) -> ssl.SSLContext:
        if self.context is None:
            try:
                context = ssl.create_default_context(cafile=self.opts.cafile)
            except (OSError, ssl.SSLError) as exc:
                raise _Fail(
                    EXIT_USAGE, f"--cafile: cannot load {self.opts.cafile!r}: {_os_error(exc)}"
                ) from None
            if not self.opts.tls_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self.context = context
        return self.context

    # -- stages ---------------------------------------------------------------------

    def open(self) -> None:
        """Connect (and, for implicit TLS, run the handshake)."""
        opts = self.opts
        target = opts.target
        context = self.tls_context() if opts.tls != "none" else None
        try:
            if target.path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(opts.timeout)
                    sock.connect(target.path)
                except BaseException:
                    sock.close()
                    raise
            else:
                sock = connect(target.host, target.port, timeout=opts.timeout)
        except OSError as exc:
            raise _Fail(EXIT_CONNECTION, f"cannot connect to {target}: {_os_error(exc)}") from None
        if not self.ehlo_name:
            self.ehlo_name = _local_name(sock)
        self.display.note(f"connected to {target}")
        if context is not None and opts.tls == "implicit":
            try:
                sock = context.wrap_socket(sock, server_hostname=self.server_name)
            except ssl.SSLError as exc:
                sock.close()
                raise self._tls_failure(exc) from None
            except OSError as exc:
                sock.close()
                raise _Fail(EXIT_CONNECTION, f"TLS handshake: {_os_error(exc)}") from None
        self.driver = SyncDriver(
            sock,
            ssl_context=context,
            server_hostname=self.server_name,
            # The library's transcript log too, when the application turned it on.
            trace=chain(self.trace, transcript_trace(str(target))),
            reply_timeout=opts.timeout,
        )

    def tls_lines(self) -> list[tuple[str, str]]:
        assert self.driver is not None
        sock = self.driver.sock
        if not isinstance(sock, ssl.SSLSocket):
            return []
        return _tls_report(sock, self.opts, self.server_name)

    def show_tls(self) -> None:
        for label, text in self.tls_lines():
            self.display.note(f"{label.strip()}: {text}" if label else text)

    def greet(self) -> Greeting:
        return self.run("greeting", procedures.greet(self.conn))

    def hello(self) -> Reply:
        return self.run("ehlo", procedures.hello(self.conn, self.ehlo_name))

    def starttls(self) -> bool:
        """STARTTLS as ``--tls`` asks; True if TLS was started."""
        conn = self.conn
        if conn.tls_active or self.opts.tls == "none":
            return False
        if not conn.extensions.starttls:
            if self.opts.tls == "required":
                raise _Fail(
                    EXIT_CONNECTION,
                    "the server does not offer STARTTLS and --tls required was given",
                    polite=True,
                )
            return False
        self.run("starttls", procedures.starttls(conn))
        self.show_tls()
        return True

    def authenticate(self) -> Reply | None:
        opts = self.opts
        if opts.auth_user is None:
            return None
        reply = self.run(
            "auth",
            procedures.authenticate(
                self.conn, opts.auth_user, opts.auth_password, preference=opts.auth_mechanisms
            ),
        )
        self.display.note(f"authenticated as {opts.auth_user}")
        return reply

    def quit(self) -> None:
        """QUIT if the session allows it; errors at this point change nothing."""
        if self.driver is None or self.conn.state not in _USABLE_FOR_QUIT:
            return
        self.display.reset()
        with contextlib.suppress(OSError, ProtocolError, ValueError):
            self.driver.run(procedures.quit(self.conn))
        self.display.flush()

    def close(self) -> None:
        if self.driver is not None:
            self.driver.close()
            self.driver = None
        if self.recorder is not None:
            self.recorder.event("client-close")

    def save_record(self) -> None:
        if self.recorder is None or self.opts.record is None:
            return
        try:
            self.opts.record.write_text(
                self.recorder.transcript().dumps(), encoding="utf-8", newline=""
            )
        except OSError as exc:
            self.err_line(f"--record: cannot write {str(self.opts.record)!r}: {_os_error(exc)}")


def _os_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} (errno {exc.errno})" if exc.errno else exc.strerror
    return str(exc) or type(exc).__name__
