"""Every face of the library behind one call: run a :class:`Plan`, get an :class:`Outcome`.

A :class:`Plan` says what the client is asked to do (send one message, with
or without credentials, TLS, LMTP, BDAT, PIPELINING).  Each :class:`Face`
runs it against ``127.0.0.1:port`` the way that face's users would, and
normalises what came back (a return value, an exception, an exit status) into
an :class:`Outcome`: ``delivered`` with the per-recipient truth, or an error
category with the server's code, text and the command that drew it.

Each adapter also checks the face's contract: only the exception types the
face documents may come out of it (the smtplib face: smtplib's hierarchy,
``OSError`` and ``ValueError``; ``smtpclient.aio``: aiosmtplib's hierarchy and
``ValueError``; the engine: its own errors and ``OSError``; the CLI: nothing,
only an exit status).  Anything else is the outcome ``leak``, which no case
expects.

The faces: the engine driven directly in every world of ``tests/drivers.py``
(``engine-blocking``, ``engine-asyncio``, ``engine-trio``,
``engine-anyio-asyncio``, ``engine-anyio-trio``), the smtplib face
(``smtplib``), ``client_SMTP`` (``client_SMTP``), ``smtpclient.aio`` on
asyncio and trio (``aio-asyncio``, ``aio-trio``; ``aio-send``: the one-call
``send()`` on asyncio), and the command line in process (``cli``).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import trio

import smtpclient
from smtp_core import (
    Connection,
    EndOfContent,
    Greeting,
    OutcomeUnknown,
    ProtocolError,
    RemoteProtocolError,
    ReplyError,
    StageTimeout,
    State,
    Timeouts,
    TLSPolicy,
    TransactionResult,
    procedures,
)
from smtpclient import aio
from smtpclient._cli import run as cli_run
from tests.drivers import WORLDS, World
from tests.hostile_kit import HOST, Certificates

__all__ = [
    "FACES",
    "GROUPS",
    "Face",
    "Kind",
    "Outcome",
    "Plan",
    "expected_content",
]

TLSMode = Literal["none", "starttls", "required", "implicit"]
Kind = Literal[
    "delivered",  # the server took the message (for at least one recipient)
    "refused",  # the server said no: code, text, command
    "closed",  # the server went away (a close, a reset) before the message's end
    "timeout",  # a stage ran out of time before the message's end
    "protocol",  # the server broke the protocol (grammar, limits, injection, SASL)
    "tls",  # the TLS handshake failed (certificate, name)
    "local",  # the client refused to go on (TLS required, credentials in the clear)
    "unknown",  # the message's end was sent and no verdict came
    "leak",  # the face let out an exception it does not document: always a bug
]

#: The name every client greets with: a fixed one, so no face resolves this
#: host's name (``getfqdn`` in a worker thread would outlive the test).
CLIENT_NAME = "client.example"

DEFAULT_MESSAGE = (
    b"From: sender@example.org\r\n"
    b"To: rcpt@example.org\r\n"
    b"Subject: hostile kit\r\n"
    b"\r\n"
    b"Hello.\r\n"
    b".a line that starts with a dot\r\n"
)


@dataclass(frozen=True)
class Plan:
    """What the client is asked to do: send one message.

    Attributes:
        tls: ``none`` (never), ``starttls`` (if offered), ``required``
            (STARTTLS or nothing), ``implicit`` (TLS from the first byte).
        timeout: seconds for every stage (connect, each reply, the handshake).
    """

    sender: str = "sender@example.org"
    recipients: tuple[str, ...] = ("rcpt@example.org",)
    message: bytes = DEFAULT_MESSAGE
    username: str | None = None
    password: str | None = None
    tls: TLSMode = "none"
    lmtp: bool = False
    bdat: bool = False
    pipelining: bool = True
    timeout: float = 3.0


@dataclass(frozen=True)
class Outcome:
    """What a face reported, normalised.

    Attributes:
        kind: see :data:`Kind`.
        code: the server's reply code behind a refusal (``None`` if the face
            does not say, or there was none).
        text: the server's text (or the face's message), for humans.
        command: the command the refusal answered: ``greeting``, ``EHLO``,
            ``LHLO``, ``STARTTLS``, ``AUTH``, ``MAIL``, ``RCPT``, ``DATA``,
            ``BDAT`` or ``.`` (the end of data); ``None`` if the face does not say.
        accepted: for ``delivered``, the recipients the message went to.
        refused: for ``delivered``, ``(recipient, code)`` for each that it did not.
        detail: the exception or the CLI's stderr, for the failure message.
        status: the CLI's exit status (``None`` for the other faces).
        limit: for ``timeout``, the limit the face's ``StageTimeout`` names
            (``None`` where the face shows none).
    """

    kind: Kind
    code: int | None = None
    text: str = ""
    command: str | None = None
    accepted: tuple[str, ...] = ()
    refused: tuple[tuple[str, int], ...] = ()
    detail: str = ""
    status: int | None = None
    limit: float | None = None


Runner = Callable[[Plan, int, Certificates], Outcome]


@dataclass(frozen=True)
class Face:
    """One way of using the library.

    Attributes:
        name: the face's name (test ids, ``SMTPCLIENT_HOSTILE_FACES``).
        group: the faces that share one set of expectations: ``engine``,
            ``smtplib``, ``client_SMTP``, ``aio``, ``cli``.
        run: runs a plan against a port and returns the outcome.
        supports: whether the face can be asked to do the plan at all.
        says_command: whether its errors name the command refused (the CLI's
            messages name its stage, not the command: False).
    """

    name: str
    group: str
    run: Runner = field(repr=False)
    supports: Callable[[Plan], bool] = field(repr=False)
    says_command: bool = True


def expected_content(message: bytes) -> bytes:
    """``message`` as a correct client delivers it: CRLF line endings, ending in CRLF."""
    content = re.sub(rb"\r\n|\r|\n", b"\r\n", message)
    return content if content.endswith(b"\r\n") else content + b"\r\n"


def _tls_cause(exc: BaseException) -> bool:
    """True if ``exc`` or what caused it is a failed TLS handshake."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _timeout_cause(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _stage_limit(exc: BaseException) -> float | None:
    """The limit of the ``StageTimeout`` behind ``exc`` (its cause chain), if any."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, StageTimeout):
            return seen.seconds
        if isinstance(seen, OutcomeUnknown):
            seen = seen.cause
            continue
        seen = seen.__cause__ or seen.__context__
    return None


def _verb(command: object) -> str:
    if isinstance(command, EndOfContent):
        return "."
    verb = str(getattr(command, "verb", "?"))
    return "." if verb == "<end of data>" else verb


# -- the engine, in every world -----------------------------------------------------------

_POLICY: dict[str, TLSPolicy] = {
    "none": "none",
    "starttls": "opportunistic",
    "required": "required",
    "implicit": "required",
}


def _transaction_outcome(result: TransactionResult) -> Outcome:
    """The engine's transaction result as an outcome."""
    if result.delivered:
        return Outcome(
            "delivered",
            accepted=result.accepted,
            refused=tuple((r, reply.code) for r, reply in result.refused.items()),
        )
    # The first refusal in session order decides: MAIL, RCPT (all), DATA, the end.
    if not result.mail_reply.is_positive:
        reply = result.mail_reply
    elif not any(r.rcpt_reply is not None and r.rcpt_reply.is_positive for r in result.recipients):
        reply = next(
            (r.rcpt_reply for r in result.recipients if r.rcpt_reply is not None),
            result.mail_reply,
        )
    elif result.data_reply is not None and not result.data_reply.is_intermediate:
        reply = result.data_reply
    elif result.final_reply is not None:
        reply = result.recipients[0].reply
    else:
        reply = result.recipients[0].reply
    return Outcome("refused", reply.code, reply.text, _verb(reply.command))


def _engine_error(exc: BaseException) -> Outcome:
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OutcomeUnknown):
        return Outcome("unknown", detail=detail, limit=_stage_limit(exc))
    if isinstance(exc, ReplyError):
        reply = exc.reply
        command = "greeting" if isinstance(reply, Greeting) else _verb(reply.command)
        return Outcome("refused", reply.code, reply.text, command, detail=detail)
    if isinstance(exc, RemoteProtocolError):  # ServerDisconnected is one: sorted below
        from smtp_core import ServerDisconnected

        kind: Kind = "closed" if isinstance(exc, ServerDisconnected) else "protocol"
        return Outcome(kind, detail=detail)
    if isinstance(exc, ProtocolError):  # LocalProtocolError, LocalSASLError
        return Outcome("local", detail=detail)
    if isinstance(exc, TimeoutError):  # before TLS: a handshake that ran out of time
        return Outcome("timeout", detail=detail, limit=_stage_limit(exc))
    if _tls_cause(exc):
        return Outcome("tls", detail=detail)
    if isinstance(exc, OSError):
        return Outcome("closed", detail=detail)
    return Outcome("leak", detail=detail)


#: The engine's documented exceptions (its docstrings): everything else is a leak.
_ENGINE_ERRORS = (ReplyError, ProtocolError, OutcomeUnknown, OSError)


def _engine_runner(world: World) -> Runner:
    def run(plan: Plan, port: int, certs: Certificates) -> Outcome:
        outcomes: list[Outcome] = []

        async def body(w: World) -> None:
            implicit = plan.tls == "implicit"
            try:
                driver = await w.connect(
                    HOST,
                    port,
                    implicit_tls=implicit,
                    ssl_context=certs.client_context(),
                    server_hostname=HOST,
                    timeouts=Timeouts.every(plan.timeout),
                )
            except _ENGINE_ERRORS as exc:
                outcomes.append(_engine_error(exc))
                return
            except Exception as exc:
                outcomes.append(Outcome("leak", detail=repr(exc)))
                return
            conn = Connection(
                lmtp=plan.lmtp,
                tls_policy=_POLICY[plan.tls],
                tls_active=implicit,
            )
            try:
                await driver.run(procedures.handshake(conn, CLIENT_NAME))
                if plan.username is not None:
                    await driver.run(procedures.authenticate(conn, plan.username, plan.password))
                result = await driver.run(
                    procedures.send_mail(
                        conn,
                        plan.sender,
                        plan.recipients,
                        plan.message,
                        chunking=plan.bdat,
                        pipelining=plan.pipelining,
                    )
                )
                outcomes.append(_transaction_outcome(result))
                if conn.state is State.READY:
                    await driver.run(procedures.quit(conn))
            except _ENGINE_ERRORS as exc:
                if not outcomes:
                    outcomes.append(_engine_error(exc))
            except Exception as exc:
                # A leak wins over everything, a delivery reported before it included.
                outcomes[:] = [Outcome("leak", detail=repr(exc))]
            finally:
                await driver.aclose()

        world.run(body)
        return outcomes[0]

    return run


def _engine_supports(plan: Plan) -> bool:
    return True


# -- the smtplib face and client_SMTP ------------------------------------------------------

_SMTPLIB_ERRORS = (OSError, ValueError)  # SMTPException is an OSError, as in smtplib


def _smtplib_error(exc: BaseException) -> Outcome:
    """smtplib's exceptions as outcomes (rules R2-R6 of ``_smtplib_outcomes``).

    An exception of the engine's own (``smtp_core``: a ``StageTimeout`` is an
    ``OSError`` too) is a leak: smtplib's faces turn them into smtplib's.
    """
    detail = f"{type(exc).__name__}: {exc}"
    if type(exc).__module__.startswith("smtp_core"):
        return Outcome("leak", detail=detail)
    if isinstance(exc, smtpclient.SMTPRecipientsRefused):
        first = next(iter(exc.recipients.values()), (None, b""))
        return Outcome(
            "refused", first[0], first[1].decode(errors="replace"), "RCPT", detail=detail
        )
    if isinstance(exc, smtpclient.SMTPResponseException):
        code = exc.smtp_code
        error = exc.smtp_error
        text = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
        if code == -1:
            return Outcome("protocol", text=text, detail=detail)
        command = {
            smtpclient.SMTPSenderRefused: "MAIL",
            smtpclient.SMTPDataError: "DATA",  # DATA or the end of data: smtplib does not say
            smtpclient.SMTPConnectError: "greeting",
            smtpclient.SMTPHeloError: "EHLO",
            smtpclient.SMTPAuthenticationError: "AUTH",
        }.get(type(exc))
        return Outcome("refused", code, text, command, detail=detail)
    if isinstance(exc, smtpclient.SMTPNotSupportedError):
        return Outcome("local", detail=detail)
    if isinstance(exc, smtpclient.SMTPServerDisconnected):
        kind: Kind = "timeout" if _timeout_cause(exc) else "closed"
        return Outcome(kind, detail=detail)
    if isinstance(exc, smtpclient.SMTPException):
        return Outcome("local", detail=detail)
    if _tls_cause(exc):
        return Outcome("tls", detail=detail)
    if isinstance(exc, TimeoutError):
        return Outcome("timeout", detail=detail)
    if isinstance(exc, OSError):
        return Outcome("closed", detail=detail)
    return Outcome("local", detail=detail)  # ValueError: refused before sending (R4)


def _refused_dict(plan: Plan, refused: dict[str, tuple[int, bytes]]) -> Outcome:
    return Outcome(
        "delivered",
        accepted=tuple(r for r in plan.recipients if r not in refused),
        refused=tuple((r, code) for r, (code, _) in refused.items()),
    )


def _run_smtplib(plan: Plan, port: int, certs: Certificates) -> Outcome:
    context = certs.client_context()
    smtp: smtpclient.SMTP | None = None
    try:
        if plan.tls == "implicit":
            smtp = smtpclient.SMTP_SSL(
                HOST, port, local_hostname=CLIENT_NAME, timeout=plan.timeout, context=context
            )
        elif plan.lmtp:
            smtp = smtpclient.LMTP(HOST, port, local_hostname=CLIENT_NAME, timeout=plan.timeout)
        else:
            smtp = smtpclient.SMTP(HOST, port, local_hostname=CLIENT_NAME, timeout=plan.timeout)
        smtp.ehlo_or_helo_if_needed()
        if plan.tls == "required" or (plan.tls == "starttls" and smtp.has_extn("starttls")):
            smtp.starttls(context=context)
            smtp.ehlo_or_helo_if_needed()
        if plan.username is not None:
            smtp.login(plan.username, plan.password or "")
        refused = smtp.sendmail(plan.sender, list(plan.recipients), plan.message)
        # The message's fate is settled; QUIT is a call of its own, whose
        # failure (a surplus reply, a close) changes nothing about it.
        return _quit_after(_refused_dict(plan, refused), smtp.quit)
    except _SMTPLIB_ERRORS as exc:
        return _smtplib_error(exc)
    except Exception as exc:
        return Outcome("leak", detail=repr(exc))
    finally:
        if smtp is not None:
            smtp.close()


def _quit_after(outcome: Outcome, quit: Callable[[], object]) -> Outcome:
    """``outcome``, unless ``quit`` lets out an exception the face does not document."""
    try:
        quit()
    except _SMTPLIB_ERRORS:
        pass
    except Exception as exc:
        return Outcome("leak", detail=f"from quit(): {exc!r}")
    return outcome


def _smtplib_supports(plan: Plan) -> bool:
    # smtplib has no BDAT, and sendmail pipelines whenever the server offers it.
    return not plan.bdat and plan.pipelining


def _run_client_smtp(plan: Plan, port: int, certs: Certificates) -> Outcome:
    client: smtpclient.client_SMTP | None = None
    try:
        client = smtpclient.client_SMTP(
            HOST, port, local_hostname=CLIENT_NAME, timeout=plan.timeout
        )
        refused = client.sendmail(plan.sender, list(plan.recipients), plan.message)
        return _quit_after(_refused_dict(plan, refused), client.send_quit)
    except _SMTPLIB_ERRORS as exc:
        return _smtplib_error(exc)
    except Exception as exc:
        return Outcome("leak", detail=repr(exc))
    finally:
        if client is not None and client._smtp is not None:
            client._smtp.close()


def _client_smtp_supports(plan: Plan) -> bool:
    # The founding document's API: plain SMTP, no TLS, no AUTH, no LMTP, no BDAT.
    return (
        plan.tls == "none"
        and plan.username is None
        and not plan.lmtp
        and not plan.bdat
        and plan.pipelining
    )


# -- smtpclient.aio, on asyncio and on trio ------------------------------------------------

#: What the asyncio face documents: aiosmtplib's hierarchy, ValueError for local refusals.
_AIO_ERRORS = (aio.SMTPException, ValueError)


def _aio_error(exc: BaseException) -> Outcome:
    """aiosmtplib's exceptions as outcomes (rules A1-A6 of ``smtpclient.aio._outcomes``)."""
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, aio.SMTPOutcomeUnknownError):
        return Outcome("unknown", detail=detail, limit=_stage_limit(exc))
    if isinstance(exc, aio.SMTPTimeoutError):
        return Outcome("timeout", detail=detail, limit=_stage_limit(exc))
    if isinstance(exc, aio.SMTPRecipientsRefused):
        first = exc.recipients[0]
        return Outcome("refused", first.code, first.message, "RCPT", detail=detail)
    if isinstance(exc, aio.SMTPResponseException):
        if exc.code == -1:
            return Outcome("protocol", text=exc.message, detail=detail)
        command = {
            aio.SMTPSenderRefused: "MAIL",
            aio.SMTPDataError: "DATA",
            aio.SMTPConnectResponseError: "greeting",
            aio.SMTPHeloError: "EHLO",
            aio.SMTPAuthenticationError: "AUTH",
        }.get(type(exc))
        return Outcome("refused", exc.code, exc.message, command, detail=detail)
    if _tls_cause(exc):
        return Outcome("tls", detail=detail)
    if isinstance(exc, (aio.SMTPServerDisconnected, aio.SMTPConnectError)):
        return Outcome("closed", detail=detail)
    return Outcome("local", detail=detail)  # SMTPException (refused locally), ValueError


def _aio_runner(
    runner: Callable[[Callable[[], object]], object], *, use_send: bool = False
) -> Runner:
    def run(plan: Plan, port: int, certs: Certificates) -> Outcome:
        outcomes: list[Outcome] = []

        async def body() -> None:
            if use_send:
                await _aio_send(plan, port, certs, outcomes)
                return
            client = aio.SMTP(
                hostname=HOST,
                port=port,
                local_hostname=CLIENT_NAME,
                timeouts=Timeouts.every(plan.timeout),
                use_tls=plan.tls == "implicit",
                start_tls={"none": False, "starttls": None, "required": True}.get(plan.tls),
                tls_context=certs.client_context(),
                username=plan.username,
                password=plan.password,
                lmtp=plan.lmtp,
                chunking=plan.bdat,
                pipelining=plan.pipelining,
            )
            try:
                await client.connect()
                errors, _ = await client.sendmail(plan.sender, list(plan.recipients), plan.message)
                outcomes.append(
                    Outcome(
                        "delivered",
                        accepted=tuple(r for r in plan.recipients if r not in errors),
                        refused=tuple((r, e.code) for r, e in errors.items()),
                    )
                )
                await client.quit()
            except _AIO_ERRORS as exc:
                if not outcomes:
                    outcomes.append(_aio_error(exc))
            except Exception as exc:
                # A leak wins over everything, a delivery reported before it included.
                outcomes[:] = [Outcome("leak", detail=repr(exc))]
            finally:
                client.close()

        runner(body)
        return outcomes[0]

    return run


async def _aio_send(plan: Plan, port: int, certs: Certificates, outcomes: list[Outcome]) -> None:
    """``smtpclient.aio.send()``: aiosmtplib's one-call API (connect, send, quit)."""
    try:
        errors, _ = await aio.send(
            plan.message,
            sender=plan.sender,
            recipients=list(plan.recipients),
            hostname=HOST,
            port=port,
            local_hostname=CLIENT_NAME,
            use_tls=plan.tls == "implicit",
            start_tls={"none": False, "starttls": None, "required": True}.get(plan.tls),
            tls_context=certs.client_context(),
            username=plan.username,
            password=plan.password,
            timeouts=Timeouts.every(plan.timeout),
            lmtp=plan.lmtp,
            chunking=plan.bdat,
            pipelining=plan.pipelining,
        )
    except _AIO_ERRORS as exc:
        outcomes.append(_aio_error(exc))
    except Exception as exc:
        outcomes.append(Outcome("leak", detail=repr(exc)))
    else:
        outcomes.append(
            Outcome(
                "delivered",
                accepted=tuple(r for r in plan.recipients if r not in errors),
                refused=tuple((r, e.code) for r, e in errors.items()),
            )
        )


def _run_on_asyncio(main: Callable[[], object]) -> object:
    async def wrapper() -> None:
        await main()  # type: ignore[misc]

    asyncio.run(wrapper())
    return None


def _run_on_trio(main: Callable[[], object]) -> object:
    trio.run(main)  # type: ignore[arg-type]
    return None


def _aio_supports(plan: Plan) -> bool:
    return True


# -- the command line, in process ----------------------------------------------------------

_CLI_COMMANDS = (
    ("the server refused the session", "greeting"),
    ("STARTTLS refused", "STARTTLS"),
    ("authentication failed", "AUTH"),
    ("EHLO and HELO refused", "EHLO"),
    ("LHLO refused", "LHLO"),
    ("sender refused", "MAIL"),
    ("DATA refused", "DATA"),
    ("message refused", "."),
)


def _cli_reply(text: str) -> tuple[int | None, str]:
    match = re.search(r": ([2-5][0-9][0-9])\b ?(.*)", text)
    if match is None:
        return None, text
    return int(match.group(1)), match.group(2)


def _cli_outcome(plan: Plan, status: int, err: str) -> Outcome:
    """The exit status (``smtpclient --help``) and stderr as an outcome."""
    detail = f"exit {status}: {err.strip()}"
    lines = [line.removeprefix("smtpclient: ") for line in err.splitlines()]
    refused = []
    texts = []
    for line in lines:
        found = re.match(
            r"(?:recipient|delivery to) (\S+) (?:refused|failed): ([0-9]{3}) ?(.*)", line
        )
        if found:
            refused.append((found.group(1), int(found.group(2))))
            texts.append(found.group(3))
    names = {r for r, _ in refused}
    if status == 1 and refused and names >= set(plan.recipients):
        # Exit 1 means "a recipient refused"; when it was every one, nothing was sent.
        return Outcome("refused", refused[0][1], texts[0], "RCPT", detail=detail)
    if status in (0, 1):
        return Outcome(
            "delivered",
            accepted=tuple(r for r in plan.recipients if r not in names),
            refused=tuple(refused),
            detail=detail,
        )
    last = lines[-1] if lines else ""
    if status == 3:
        if "may have been delivered" in err:
            return Outcome("unknown", detail=detail)
        if "no reply within" in err or "timed out" in err:
            return Outcome("timeout", detail=detail)
        if "TLS handshake" in err:
            return Outcome("tls", detail=detail)
        if "does not offer STARTTLS" in err:
            return Outcome("local", detail=detail)
        for marker, command in _CLI_COMMANDS[:2]:
            if marker in last:
                code, text = _cli_reply(last)
                return Outcome("refused", code, text, command, detail=detail)
        if "closed the session" in last:
            code, text = _cli_reply(last)
            return Outcome("refused", code, text, None, detail=detail)
        return Outcome("closed", detail=detail)
    if status in (4, 5):
        if "[use TLS" in err or ("auth:" in last and "in the clear" in last):
            return Outcome("local", detail=detail)
        for marker, command in _CLI_COMMANDS:
            if marker in last:
                code, text = _cli_reply(last)
                if code is None:  # the server broke SASL: no reply to quote
                    return Outcome("protocol", text=last, command=command, detail=detail)
                return Outcome("refused", code, text, command, detail=detail)
        return Outcome("local", detail=detail)
    if status == 6:
        return Outcome("protocol", detail=detail)
    return Outcome("local", detail=detail)  # 2: usage (an address refused locally)


def _run_cli(plan: Plan, port: int, certs: Certificates) -> Outcome:
    message = Path(certs.ca_file).parent / (
        "message-" + hashlib.sha256(plan.message).hexdigest()[:16] + ".eml"
    )
    if not message.exists():
        message.write_bytes(plan.message)
    argv = [
        "--server",
        f"{HOST}:{port}",
        "--ehlo",
        CLIENT_NAME,
        "--timeout",
        str(plan.timeout),
        "--tls",
        plan.tls,
        "--from",
        plan.sender,
        "--data",
        str(message),
        "--quiet",
    ]
    if plan.tls != "none":  # the CLI refuses --cafile without TLS (a usage error)
        argv += ["--cafile", certs.ca_file]
    for recipient in plan.recipients:
        argv += ["--to", recipient]
    if plan.username is not None:
        argv += ["--auth-user", plan.username, "--auth-password", plan.password or ""]
    if plan.lmtp:
        argv.append("--lmtp")
    if plan.bdat:
        argv.append("--bdat")
    if not plan.pipelining:
        argv += ["--pipelining", "off"]
    out, err = io.StringIO(), io.StringIO()
    try:
        status = cli_run(argv, stdout=out, stderr=err)
    except BaseException as exc:
        return Outcome("leak", detail=repr(exc))
    return replace(_cli_outcome(plan, status, err.getvalue()), status=status)


def _cli_supports(plan: Plan) -> bool:
    return True


# -- the list ------------------------------------------------------------------------------

FACES: Sequence[Face] = (
    *(
        Face(f"engine-{world.name}", "engine", _engine_runner(world), _engine_supports)
        for world in WORLDS
    ),
    Face("smtplib", "smtplib", _run_smtplib, _smtplib_supports),
    Face("client_SMTP", "client_SMTP", _run_client_smtp, _client_smtp_supports),
    Face("aio-asyncio", "aio", _aio_runner(_run_on_asyncio), _aio_supports),
    Face("aio-trio", "aio", _aio_runner(_run_on_trio), _aio_supports),
    Face("aio-send", "aio", _aio_runner(_run_on_asyncio, use_send=True), _aio_supports),
    Face("cli", "cli", _run_cli, _cli_supports, says_command=False),
)

#: The groups of faces that share expectations, in the order of :data:`FACES`.
GROUPS = tuple(dict.fromkeys(face.group for face in FACES))
