"""What each mode of the ``smtpclient`` command does: send (also ``--raw``), probe."""

from __future__ import annotations

from collections.abc import Sequence

from smtp_core import (
    Connection,
    Data,
    Extensions,
    Mail,
    Procedure,
    Rcpt,
    Reply,
    State,
    TransactionResult,
    Write,
    procedures,
)

from ._args import _Options
from ._common import (
    EXIT_CONNECTION,
    EXIT_OK,
    EXIT_RECIPIENT_REFUSED,
    EXIT_TRANSACTION,
    _Fail,
)
from ._display import _printable
from ._message import _MessageSource
from ._session import _first_line, _reply_text, _Session

__all__ = ["_judge", "_mail_params", "_probe", "_send", "_transaction"]


# -- what each mode does -----------------------------------------------------------------------


def _mail_params(opts: _Options, ext: Extensions, content: bytes | None) -> list[str]:
    """``--mail-param``, and SMTPUTF8, SIZE and BODY=8BITMIME where ``ext`` offers them."""
    params = list(opts.mail_params)
    given = {p.partition("=")[0].upper() for p in params}
    addresses = [opts.sender or "", *opts.recipients]
    if "SMTPUTF8" not in given and not all(a.isascii() for a in addresses):
        params.append("SMTPUTF8")
    if content is not None:
        if "SIZE" not in given and ext.size is not None:
            params.append(f"SIZE={len(content)}")
        if "BODY" not in given and ext.eightbitmime and not content.isascii():
            params.append("BODY=8BITMIME")
    return params


def _envelope(conn: Connection, group: Sequence[Mail | Rcpt | Data]) -> Procedure[list[Reply]]:
    """MAIL, the RCPTs (and DATA): pipelined if the server offers it, else one by one."""
    replies: list[Reply] = []
    if conn.extensions.pipelining:
        yield Write(conn.send_many(group))
        for _ in group:
            replies.append((yield from procedures.read_reply(conn)))
            if conn.state is State.CLOSED:
                break
        return replies
    for command in group:
        if replies and not replies[0].is_positive:
            break
        if isinstance(command, Data) and not conn.accepted_recipients:
            break
        replies.append((yield from procedures.command(conn, command)))
        if conn.state is State.CLOSED:
            break
    return replies


def _partial_transaction(session: _Session) -> int:
    """``--quit-after mail``, ``rcpt`` or ``data``: as far as that, then stop."""
    opts = session.opts
    stage = opts.quit_after
    mail = Mail(opts.sender or "", tuple(_mail_params(opts, session.conn.extensions, None)))
    rcpts = [Rcpt(r, tuple(opts.rcpt_params)) for r in opts.recipients]
    group: list[Mail | Rcpt | Data] = [mail]
    if stage in ("rcpt", "data"):
        group += rcpts
    if stage == "data":
        group.append(Data())
    replies = session.run(stage or "mail", _envelope(session.conn, group))
    if session.conn.state is State.CLOSED:
        raise _Fail(EXIT_CONNECTION, f"the server closed the session: {_reply_text(replies[-1])}")
    if not replies[0].is_positive:
        raise _Fail(EXIT_TRANSACTION, f"sender refused: {_reply_text(replies[0])}", polite=True)
    code = EXIT_OK
    for rcpt, reply in zip(opts.recipients, replies[1 : 1 + len(rcpts)], strict=False):
        if not reply.is_positive:
            session.err_line(f"recipient {rcpt} refused: {_reply_text(reply)}")
            code = EXIT_RECIPIENT_REFUSED
    if stage == "data":
        data_reply = replies[-1] if len(replies) == len(group) else None
        if data_reply is not None and data_reply.is_intermediate:
            session.display.note("stopping after DATA: closing the connection without QUIT")
            return code
        if code == EXIT_OK:
            what = "no reply" if data_reply is None else _reply_text(data_reply)
            raise _Fail(EXIT_TRANSACTION, f"DATA refused: {what}", polite=True)
    session.display.note(f"stopping after {stage}")
    return code


def _transaction(session: _Session, content: bytes) -> TransactionResult:
    """One message through ``send_mail`` on the command's own session."""
    opts = session.opts
    return session.run(
        "send",
        procedures.send_mail(
            session.conn,
            opts.sender or "",
            opts.recipients,
            content,
            mail_params=_mail_params(opts, session.conn.extensions, content),
            rcpt_params=opts.rcpt_params,
            chunking=opts.bdat,
            pipelining=opts.pipelining,
        ),
    )


def _judge(session: _Session, result: TransactionResult) -> tuple[int, list[str]]:
    """The exit status and the problems of one transaction; notes what was delivered."""
    opts = session.opts
    code = EXIT_OK
    problems: list[str] = []
    if not result.mail_reply.is_positive:
        code = EXIT_TRANSACTION
        problems.append(f"sender refused: {_reply_text(result.mail_reply)}")
    else:
        rcpt_refused = False
        for r in result.recipients:
            if r.rcpt_reply is not None and not r.rcpt_reply.is_positive:
                rcpt_refused = True
                problems.append(f"recipient {r.recipient} refused: {_reply_text(r.rcpt_reply)}")
        if rcpt_refused:
            code = EXIT_RECIPIENT_REFUSED
        accepted_at_rcpt = any(
            r.rcpt_reply is not None and r.rcpt_reply.is_positive for r in result.recipients
        )
        data = result.data_reply
        final = result.final_reply
        if accepted_at_rcpt and data is not None and not data.is_intermediate:
            code = EXIT_TRANSACTION
            problems.append(f"DATA refused: {_reply_text(data)}")
        elif final is not None and opts.lmtp:
            for r in result.recipients:
                if r.rcpt_reply is not None and r.rcpt_reply.is_positive:
                    if r.reply.is_positive:
                        session.display.note(f"delivered to {r.recipient}: {_reply_text(r.reply)}")
                    else:
                        code = max(code, EXIT_RECIPIENT_REFUSED)
                        problems.append(f"delivery to {r.recipient} failed: {_reply_text(r.reply)}")
        elif not accepted_at_rcpt:
            # Every RCPT was refused: a 354 to a pipelined DATA drew the end
            # marker alone (RFC 2920 §3.1), and its reply judges no message of
            # ours.  The refusals above are the whole story (exit 1).
            pass
        elif final is not None and not final.is_positive:
            code = EXIT_TRANSACTION
            problems.append(f"message refused: {_reply_text(final)}")
        elif final is not None:
            accepted = len(result.accepted)
            session.display.note(
                f"message accepted for {accepted} recipient{'s' if accepted != 1 else ''}: "
                f"{_reply_text(final)}"
            )
    return code, problems


def _send_one(session: _Session, content: bytes) -> int:
    """One message on the command's own session: its notes, its problems, its exit status."""
    result = _transaction(session, content)
    code, problems = _judge(session, result)
    if session.conn.state is State.CLOSED:
        closed = "the server closed the session: " + ("; ".join(problems) or "421")
        if not (session.opts.lmtp and result.delivered):
            raise _Fail(EXIT_CONNECTION, closed)
        # LMTP: a recipient got the message before a 421 verdict closed the session.
        # Exit 3 would hide that delivery (and invite a retry that duplicates it):
        # exit 1, "a recipient refused (the others may have taken it)".
        for problem in problems:
            session.err_line(problem)
        session.err_line("the server closed the session after its verdicts")
        return code
    for problem in problems:
        session.err_line(problem)
    return code


def _send(session: _Session, source: _MessageSource | None) -> int:
    """The send mode: the stages up to ``--quit-after``, the message(s), QUIT."""
    opts = session.opts
    stop = opts.quit_after
    session.open()
    if stop == "connect":
        session.display.note("stopping after connect: closing without QUIT")
        return EXIT_OK
    session.greet()
    if stop == "greeting":
        return _stopped(session, stop)
    if opts.raw is not None and opts.raw_no_ehlo:
        return _raw(session)
    session.hello()
    if stop == "ehlo":
        return _stopped(session, stop)
    if session.starttls():
        session.hello()
    if stop == "tls":
        return _stopped(session, stop)
    session.authenticate()
    if stop == "auth":
        return _stopped(session, stop)
    if opts.raw is not None:
        return _raw(session)
    if stop is not None:
        code = _partial_transaction(session)
        if stop != "data":
            session.quit()
        return code

    assert source is not None
    if opts.count > 1:
        from ._bulk import _send_many  # noqa: PLC0415 (the pool is loaded only for --count)

        return _send_many(session, source)
    code = _send_one(session, source.message())
    session.quit()
    return code


def _stopped(session: _Session, stage: str) -> int:
    session.display.note(f"stopping after {stage}")
    session.quit()
    return EXIT_OK


def _raw(session: _Session) -> int:
    """Send the ``--raw`` bytes unchecked and read ``--raw-replies`` replies."""
    opts = session.opts
    assert opts.raw is not None
    session.display.note(
        f"sending {len(opts.raw)} raw bytes unchecked, then reading {opts.raw_replies} "
        f"repl{'y' if opts.raw_replies == 1 else 'ies'}"
    )
    replies = session.run("raw", _raw_exchange(session.conn, opts.raw, opts.raw_replies))
    if not session.opts.show_transcript:
        for reply in replies:
            for i, line in enumerate(reply.lines):
                sep = " " if i == len(reply.lines) - 1 else "-"
                session.out.write(f"{reply.code}{sep}{_printable(line)}\n")
    session.quit()
    return EXIT_OK


def _raw_exchange(conn: Connection, data: bytes, count: int) -> Procedure[list[Reply]]:
    yield Write(conn.send_unchecked(data, replies=count))
    replies = []
    for _ in range(count):
        replies.append((yield from procedures.read_reply(conn)))
    return replies


def _probe(session: _Session) -> int:
    """The probe mode: report what the server offers, then QUIT."""
    opts = session.opts
    width = 14

    def show(label: str, text: str) -> None:
        session.out.write(f"{label:<{width}}{text}\n".rstrip() + "\n")

    def show_extensions(ext: Extensions) -> None:
        if not len(ext):
            show("extensions", "(none)")
        for i, keyword in enumerate(ext):
            show("extensions" if i == 0 else "", f"{keyword} {ext[keyword]}".rstrip())

    show("server", str(opts.target))
    session.open()
    if opts.tls == "implicit":
        for label, text in session.tls_lines():
            show(label, text)
    greeting = session.greet()
    show("greeting", _reply_text(greeting))
    reply = session.hello()
    show("LHLO" if opts.lmtp else "EHLO", _first_line(reply))
    before = session.conn.extensions
    show_extensions(before)
    if opts.tls in ("none", "implicit"):
        show("STARTTLS", "offered" if before.starttls else "not offered")
    if session.starttls():
        show("STARTTLS", "offered; started")
        for label, text in session.tls_lines():
            show(label, text)
        reply = session.hello()
        show(("LHLO" if opts.lmtp else "EHLO") + " in TLS", _first_line(reply))
        show_extensions(session.conn.extensions)
    elif opts.tls == "starttls":
        show("STARTTLS", "not offered")
    ext = session.conn.extensions
    auth = " ".join(sorted(ext.auth)) or "not offered"
    if session.conn.tls_active and before is not ext and before.auth != ext.auth:
        auth += f" (before TLS: {' '.join(sorted(before.auth)) or 'not offered'})"
    show("AUTH", auth)
    size = ext.size
    if size is None:
        show("SIZE", "not advertised")
    elif size == 0:
        show("SIZE", "no fixed limit")
    else:
        show("SIZE", f"{size} octets ({size / 1048576:.1f} MiB)")
    for keyword in ("PIPELINING", "CHUNKING", "8BITMIME", "SMTPUTF8", "DSN"):
        show(keyword, "yes" if keyword in ext else "no")
    if opts.auth_user is not None:
        auth_reply = session.authenticate()
        if auth_reply is not None:
            show("AUTH result", _reply_text(auth_reply))
    session.quit()
    return EXIT_OK
