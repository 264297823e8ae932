"""aiosmtplib and smtpclient.aio side by side: the differential harness (tests/differential_aio).

The same scripted-server conversation runs twice, each run in its own ``asyncio.run``
against its own server: through aiosmtplib 5.1.3 and through ``smtpclient.aio``.  Return
values, exceptions (class name, the aiosmtplib classes it is an instance of mapped to the
library's by name, ``code``, the server's ``message``, ``sender``, ``recipient``,
``recipients``), the client's observable state after each call and the exact bytes the
server received must agree, except where a named rule of
``tests/differential_aio/deviations.py`` explains the difference.

The tests whose name contains ``versus`` need ``smtpclient.aio``: they fail (never skip)
with a clear message while its ``SMTP`` class or ``send`` is missing.  Everything else runs
aiosmtplib against itself and against small deviant subclasses of it (one per rule, below):
``-k "not versus"`` runs that part alone.

Hypothesis profiles (HYPOTHESIS_PROFILE): ``ci`` 300 conversations per property, ``dev``
800, both derandomized (the same conversations every run, so the gate never depends on a
draw); ``deep`` 20000, drawn afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import ssl
from collections.abc import Iterator
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtplib import (
    SMTPDataError,
    SMTPException,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPResponse,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from aiosmtplib.email import parse_address, quote_address
from aiosmtplib.typing import Default
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from smtp_core import MAX_REPLY_LINE_LENGTH, MAX_REPLY_LINES
from tests._postfix import free_port
from tests.differential.server import (
    AUTH_RESPONSE,
    END_OF_DATA,
    Answer,
    Policy,
    close_silently,
    reply,
)
from tests.differential_aio.compare import (
    OURS,
    THEIRS,
    Implementation,
    MissingImplementation,
    Outcome,
    Verdict,
    check,
    closed_down,
    compare,
    load,
    run,
)
from tests.differential_aio.deviations import DEVIATIONS, _well_formed
from tests.differential_aio.scenarios import (
    CLOSE_421,
    HUGE_LINE,
    LENIENT,
    LONG_LINE,
    MALFORMED,
    MANY_LINES,
    STARTTLS_INJECTED,
    AioPolicy,
    Conversation,
    MessageSpec,
    Pace,
    Script,
    Step,
    conversations,
)

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "dev")
CONVERSATIONS = {"ci": 300, "dev": 800, "deep": 20_000}.get(PROFILE, 800)
TAMPERED = {"ci": 60, "dev": 200, "deep": 2000}.get(PROFILE, 200)
#: The gate draws the same conversations every run; "deep" explores afresh each time.
DERANDOMIZE = PROFILE != "deep"
#: No explain phase: the report already shows both transcripts.
PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)
PROPERTY = settings(
    max_examples=CONVERSATIONS,
    phases=PHASES,
    derandomize=DERANDOMIZE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

ALICE, BOB, CAROL = "alice@client.test", "bob@x.test", "carol@x.test"
MESSAGE = "Subject: hi\n\nhello\n"
PIPELINING = ("PIPELINING",)


def answers(**by_verb: tuple[Answer, ...]) -> tuple[tuple[str, tuple[Answer, ...]], ...]:
    """``answers(MAIL=(...,))``; ``END`` stands for "." and ``RESPONSE`` for AUTH-RESPONSE."""
    names = {"END": END_OF_DATA, "RESPONSE": AUTH_RESPONSE}
    return tuple((names.get(verb, verb), replies) for verb, replies in by_verb.items())


def conversation(
    policy: Policy,
    *steps: Step,
    pace: tuple[Pace, ...] = (),
    auth_in_clear: bool = True,
    **options: Any,
) -> Conversation:
    """A ``manual`` script: connect(), the steps, close()."""
    script = Script(
        "manual",
        (Step("connect"), *steps),
        tuple(options.items()) or (("local_hostname", "client.test"),),
        auth_in_clear=auth_in_clear,
    )
    return Conversation(AioPolicy(policy, pace), script)


def sendmail(*to: str, msg: str | bytes = MESSAGE, sender: str = ALICE) -> Step:
    return Step("sendmail", (sender, list(to), msg))


def ours() -> Implementation:
    """smtpclient.aio, or the test fails (it never skips) saying what is missing."""
    try:
        return load(OURS)
    except MissingImplementation as exc:
        pytest.fail(f"{exc}\n(deselect with -k 'not versus' until it exists)", pytrace=False)


def agree(verdict: Verdict) -> None:
    if not verdict.ok:
        pytest.fail(verdict.report(), pytrace=False)


def agree_with_itself(conv: Conversation, library: str | Implementation = THEIRS) -> Verdict:
    """The library against itself: every rule is offered, none may be needed."""
    verdict = check(conv, library, library)
    if not verdict.ok or verdict.rules:
        pytest.fail("the harness is not deterministic:\n" + verdict.report(), pytrace=False)
    return verdict


# -- the properties -------------------------------------------------------------------------


@PROPERTY
@given(conversations())
def test_aiosmtplib_agrees_with_itself(conv: Conversation) -> None:
    # aiosmtplib against itself, each run in its own asyncio.run with its own server: any
    # difference is the harness's (a race, an input answered by timing), and no deviation
    # rule may be needed to explain it away.
    agree_with_itself(conv)


def test_smtpclient_aio_versus_aiosmtplib() -> None:
    implementation = ours()

    @PROPERTY
    @given(conversations())
    def versus(conv: Conversation) -> None:
        agree(check(conv, THEIRS, implementation))

    versus()


@PROPERTY
@given(conversations())
def test_smtpclient_aio_versus_itself(conv: Conversation) -> None:
    # smtpclient.aio against itself (determinism of ours, through the same harness).
    implementation = ours()
    agree_with_itself(conv, implementation)


def _tampered(outcome: Outcome, other: Outcome | None) -> Outcome:
    if other is not None and other != outcome:
        return other
    if outcome.kind == "return":
        return Outcome("raise", exc_type="TamperedError", isa=("TamperedError",), attrs="{}")
    return Outcome.returned("<tampered>")


@settings(
    max_examples=TAMPERED,
    phases=PHASES,
    derandomize=DERANDOMIZE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(conversations(), st.data())
def test_no_rule_explains_a_tampered_outcome(conv: Conversation, data: st.DataObject) -> None:
    # aiosmtplib against itself needs no rule; change one step's outcome in the second
    # run (to another step's outcome, or to one no library gives) and no rule may explain
    # the difference away: each rule names the outcomes it accepts.
    theirs = run(THEIRS, conv)
    index = data.draw(st.integers(0, len(theirs.steps) - 1), label="tampered step")
    source = data.draw(st.integers(-1, len(theirs.steps) - 1), label="outcome of step")
    record = theirs.steps[index]
    other = theirs.steps[source].outcome if source >= 0 else None
    steps = list(theirs.steps)
    steps[index] = replace(record, outcome=_tampered(record.outcome, other))
    verdict = compare(conv, theirs, replace(theirs, steps=tuple(steps)))
    assert not verdict.ok, verdict.report()
    assert verdict.unexplained is not None
    assert verdict.unexplained.index == index, verdict.report()
    assert "outcome" in verdict.unexplained.aspects, verdict.report()


# -- the harness itself --------------------------------------------------------------------


def test_a_close_after_a_reply_waits_for_the_clients_reaction() -> None:
    # A 421 to the end of data: aiosmtplib raises SMTPDataError(421) without closing and
    # sendmail writes RSET.  A server that closes at once would make that RSET depend on
    # the event loop's timing; held, it is always written (and read after closing).
    conv = conversation(Policy(answers=answers(END=(CLOSE_421,))), sendmail(BOB), Step("noop"))
    verdict = agree_with_itself(conv)
    record = verdict.theirs.steps[2]
    assert record.outcome.exc_type == "SMTPDataError"
    assert [(e.kind, e.key) for e in record.entries][-1] == ("discarded", "RSET")
    assert not record.state.connected


def test_starttls_goes_on_in_tls() -> None:
    policy = Policy(
        extensions=("STARTTLS", "AUTH PLAIN"),
        answers=answers(STARTTLS=(reply(220, "2.0.0 go ahead"),)),
    )
    conv = conversation(policy, Step("login", ("user", "secret")), sendmail(BOB), Step("quit"))
    verdict = agree_with_itself(conv)
    connect, login = verdict.theirs.steps[1:3]
    assert connect.state.tls == "True"
    assert [e.key for e in connect.entries] == ["greeting", "EHLO", "STARTTLS"]
    assert [e.key for e in login.entries] == ["EHLO", "AUTH"]
    assert login.outcome.value == "SMTPResponse(235, '2.7.0 Authentication successful')"


def test_late_and_split_replies() -> None:
    pace = (Pace(1, 0.01, 3), Pace(2, 0.005, -1), Pace(3, 0.005, 1))
    policy = Policy(extensions=PIPELINING, answers=answers(NOOP=(reply(250, "a", "b", "c"),)))
    verdict = agree_with_itself(conversation(policy, Step("noop"), sendmail(BOB), pace=pace))
    assert verdict.theirs.steps[2].outcome.value == "SMTPResponse(250, 'a\\nb\\nc')"


def test_a_second_connect_is_refused_at_once() -> None:
    conv = conversation(Policy(), Step("quit"), Step("connect"), Step("noop"))
    verdict = agree_with_itself(conv)
    assert verdict.theirs.steps[3].outcome.exc_type == "SMTPConnectError"


def test_every_kind_of_script() -> None:
    context = Script(
        "context",
        (sendmail(BOB), Step("noop"), Step("rset")),
        (("local_hostname", "client.test"),),
        propagate=True,
    )
    sent = Script(
        "send",
        (
            Step(
                "send",
                (MessageSpec(ALICE, (BOB, CAROL), bcc=("hidden@x.test",)),),
                (("local_hostname", "client.test"),),
            ),
        ),
    )
    policy = Policy(answers=answers(NOOP=(reply(500, "no"),)))
    verdict = agree_with_itself(Conversation(AioPolicy(policy), context))
    methods = [r.step.method for r in verdict.theirs.steps]
    assert methods == ["SMTP", "__aenter__", "sendmail", "noop", "rset", "__aexit__", "close"]
    assert [r.outcome.kind for r in verdict.theirs.steps][3:5] == ["raise", "skipped"]
    verdict = agree_with_itself(Conversation(AioPolicy(Policy()), sent))
    assert verdict.theirs.steps[0].outcome.value == "({}, '2.0.0 Ok: queued')"


# -- each rule, pinned: one conversation, and a deviant aiosmtplib that has the deviation --


class _Model(aiosmtplib.SMTP):
    """aiosmtplib with smtpclient.aio's two options (accepted, used by the subclasses)."""

    def __init__(self, *, auth_in_clear: bool = False, pipelining: bool = True, **kw: Any):
        super().__init__(**kw)
        self.auth_in_clear = auth_in_clear
        self.pipelining = pipelining


class _AuthInClearModel(_Model):
    """Refuses credentials without TLS unless ``auth_in_clear``."""

    def _refuse_in_clear(self) -> None:
        if not self.auth_in_clear and self.get_transport_info("sslcontext") is None:
            raise SMTPException("refusing to send credentials in the clear")

    async def login(self, username: Any, password: Any, /, timeout: Any = Default.token) -> Any:
        await self._ehlo_or_helo_if_needed()
        self._refuse_in_clear()
        return await super().login(username, password, timeout=timeout)

    async def auth_plain(self, username: Any, password: Any, /, **kw: Any) -> Any:
        self._refuse_in_clear()
        return await super().auth_plain(username, password, **kw)


class _CredentialsModel(_Model):
    """Refuses NUL, CR and LF in credentials with ValueError, before any byte."""

    async def auth_plain(self, username: Any, password: Any, /, **kw: Any) -> Any:
        text = f"{username!s}{password!s}"
        if any(c in text for c in "\0\r\n"):
            raise ValueError("control character in credentials")
        return await super().auth_plain(username, password, **kw)


class SMTPOutcomeUnknownError(SMTPException):
    """The model's version of smtpclient.aio's class (API.md section 7)."""

    def __init__(
        self,
        message: str,
        /,
        cause: BaseException,
        delivered: tuple[str, ...] = (),
        unknown: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.cause, self.delivered, self.unknown = cause, delivered, unknown


class _OutcomeUnknownModel(_Model):
    """Raises SMTPOutcomeUnknownError when the connection ends after the final dot."""

    accepted: list[str]

    async def mail(self, sender: str, /, **kw: Any) -> Any:
        self.accepted = []
        return await super().mail(sender, **kw)

    async def rcpt(self, recipient: str, /, **kw: Any) -> Any:
        response = await super().rcpt(recipient, **kw)
        self.accepted.append(recipient)
        return response

    async def data(self, message: str | bytes, /, **kw: Any) -> Any:
        protocol = self.protocol
        sent: list[bytes] = []
        if protocol is not None:
            write = protocol.write

            def recording(data: bytes) -> None:
                write(data)
                sent.append(data)

            protocol.write = recording  # type: ignore[method-assign]
        try:
            return await super().data(message, **kw)
        except SMTPServerDisconnected as exc:
            if sent and sent[-1].endswith(b".\r\n") and sent[-1] != b"DATA\r\n":
                unknown = tuple(getattr(self, "accepted", ()))
                raise SMTPOutcomeUnknownError("no verdict", exc, (), unknown) from exc
            raise


class _InjectionModel(_Model):
    """Ends the session when bytes follow the 220 to STARTTLS."""

    async def starttls(self, **kw: Any) -> Any:
        protocol = self.protocol
        if protocol is None:
            return await super().starttls(**kw)
        read_response = protocol.read_response

        async def checked(timeout: float | None = None) -> SMTPResponse:
            response = await read_response(timeout=timeout)
            if response.code == 220 and protocol._buffer:
                raise SMTPServerDisconnected("bytes after the 220 to STARTTLS")
            return response

        protocol.read_response = checked  # type: ignore[method-assign]
        try:
            return await super().starttls(**kw)
        finally:
            with contextlib.suppress(AttributeError):
                del protocol.read_response


class _UnsolicitedModel(_Model):
    """Ends the session when a reply leaves bytes nobody asked for."""

    async def execute_command(self, *args: bytes, timeout: Any = Default.token) -> Any:
        response = await super().execute_command(*args, timeout=timeout)
        if self.protocol is not None and self.protocol._buffer:
            self.close()
            raise SMTPServerDisconnected("a reply nobody asked for")
        return response


class _UnparsableModel(_Model):
    """Closes after a reply it cannot parse."""

    async def execute_command(self, *args: bytes, timeout: Any = Default.token) -> Any:
        try:
            return await super().execute_command(*args, timeout=timeout)
        except SMTPResponseException as exc:
            if exc.code == -1:
                self.close()
            raise


class _AddressModel(_Model):
    """Refuses an address of ``sendmail`` it cannot send before the first byte of the
    transaction (``send_message`` goes through ``sendmail``): a C0 control or DEL
    (ValueError), non-ASCII without SMTPUTF8 (UnicodeEncodeError)."""

    async def sendmail(  # type: ignore[override]
        self, sender: str, recipients: str | list[str], message: str, /, **kw: Any
    ) -> Any:
        listed = [recipients] if isinstance(recipients, str) else recipients
        addresses = [parse_address(a) for a in (sender, *listed)]
        if any(re.search(r"[\x00-\x1f\x7f]", address) for address in addresses):
            raise ValueError("a control character in an address")
        if not any(o.upper() == "SMTPUTF8" for o in kw.get("mail_options") or ()):
            for address in addresses:
                address.encode("ascii")
        return await super().sendmail(sender, recipients, message, **kw)


class _LineBreakModel(_Model):
    """Refuses an address of ``sendmail`` with a CR or LF inside it (ValueError) before
    the first byte of the transaction, where aiosmtplib mails what ``parseaddr`` makes of it."""

    async def sendmail(  # type: ignore[override]
        self, sender: str, recipients: str | list[str], message: str, /, **kw: Any
    ) -> Any:
        listed = [recipients] if isinstance(recipients, str) else recipients
        if any("\r" in a.strip() or "\n" in a.strip() for a in (sender, *listed)):
            raise ValueError("a line break in an address")
        return await super().sendmail(sender, recipients, message, **kw)


class _MalformedModel(_Model):
    """Refuses a reply whose code is not three digits, the first 2 to 5 (``+25``), with
    SMTPResponseException(-1), and closes."""

    async def execute_command(self, *args: bytes, timeout: Any = Default.token) -> Any:
        response = await super().execute_command(*args, timeout=timeout)
        if not 200 <= response.code <= 599:
            self.close()
            raise SMTPResponseException(-1, "malformed reply")
        return response


class _TwoHundredModel(_Model):
    """Takes every 2yz to MAIL, RCPT and the end of data as a success."""

    async def mail(self, sender: str, /, **kw: Any) -> Any:
        try:
            return await super().mail(sender, **kw)
        except SMTPSenderRefused as exc:
            if exc.code // 100 == 2:
                return SMTPResponse(exc.code, exc.message)
            raise

    async def rcpt(self, recipient: str, /, **kw: Any) -> Any:
        try:
            return await super().rcpt(recipient, **kw)
        except SMTPRecipientRefused as exc:
            if exc.code // 100 == 2:
                return SMTPResponse(exc.code, exc.message)
            raise

    async def data(self, message: str | bytes, /, **kw: Any) -> Any:
        protocol = self.protocol
        sent: list[bytes] = []
        if protocol is not None:
            write = protocol.write

            def recording(data: bytes) -> None:
                write(data)
                sent.append(data)

            protocol.write = recording  # type: ignore[method-assign]
        try:
            return await super().data(message, **kw)
        except SMTPDataError as exc:
            if exc.code // 100 == 2 and sent and sent[-1] != b"DATA\r\n":
                return SMTPResponse(exc.code, exc.message)
            raise
        finally:
            if protocol is not None:
                with contextlib.suppress(AttributeError):
                    del protocol.write


class _ClosedAfter421Model(_Model):
    """Closes at once after a 421 to DATA or to the final dot (aiosmtplib's
    execute_command already closes after any other 421), so writes no RSET after it."""

    async def data(self, message: str | bytes, /, **kw: Any) -> Any:
        try:
            return await super().data(message, **kw)
        except SMTPDataError as exc:
            if exc.code == 421:
                self.close()
            raise


class _ReplyLimitsModel(_Model):
    """Refuses a reply of more than MAX_REPLY_LINES lines, or with a line over
    MAX_REPLY_LINE_LENGTH octets, with SMTPResponseException(-1), and closes."""

    async def execute_command(self, *args: bytes, timeout: Any = Default.token) -> Any:
        response = await super().execute_command(*args, timeout=timeout)
        lines = [t.encode("utf-8", "surrogateescape") for t in response.message.split("\n")]
        # Each text is its line without the code, the separator and CRLF: 6 octets.
        if len(lines) > MAX_REPLY_LINES or max(map(len, lines)) + 6 > MAX_REPLY_LINE_LENGTH:
            self.close()
            raise SMTPResponseException(-1, "reply over the engine's limits")
        return response


class _PipeliningModel(_Model):
    """Sends what a pipelining ``sendmail`` sends: MAIL, every RCPT and DATA whatever the
    replies (read one by one: the harness's server answers line by line, so the bytes
    and answers are a pipelining client's), the end-of-data mark alone after a failure
    that still drew 354, then RSET."""

    async def sendmail(  # type: ignore[override]
        self, sender: str, recipients: list[str], message: str, /, **kw: Any
    ) -> Any:
        await self._ehlo_or_helo_if_needed()
        if not self.supports_extension("pipelining"):
            return await super().sendmail(sender, recipients, message, **kw)
        mail = await self.execute_command(b"MAIL", b"FROM:" + quote_address(sender).encode())
        rcpts = [
            await self.execute_command(b"RCPT", b"TO:" + quote_address(r).encode())
            for r in recipients
        ]
        data = await self.execute_command(b"DATA")
        refused = [
            SMTPRecipientRefused(r.code, r.message, a)
            for a, r in zip(recipients, rcpts, strict=True)
            if r.code not in (250, 251)
        ]
        failure: Exception | None = None
        if mail.code != 250:
            failure = SMTPSenderRefused(mail.code, mail.message, sender)
        elif len(refused) == len(recipients):
            failure = SMTPRecipientsRefused(refused)
        elif data.code != 354:
            failure = SMTPDataError(data.code, data.message)
        assert self.protocol is not None
        if failure is None:
            content = message.replace("\n", "\r\n").encode() + b".\r\n"
            self.protocol.write(content)
            verdict = await self.protocol.read_response(timeout=self.timeout)
            if verdict.code == 250:
                return {e.recipient: SMTPResponse(e.code, e.message) for e in refused}, (
                    verdict.message
                )
            failure = SMTPDataError(verdict.code, verdict.message)
        elif data.code == 354:
            self.protocol.write(b".\r\n")
            await self.protocol.read_response(timeout=self.timeout)
        with contextlib.suppress(SMTPResponseException, ConnectionError):
            await self.rset()
        raise failure


def model(cls: type[_Model]) -> Implementation:
    """An :class:`Implementation` around a deviant subclass of aiosmtplib's SMTP."""

    async def send(message: Any, /, **kw: Any) -> Any:  # unused by the examples
        raise NotImplementedError

    errors = {**load(THEIRS).errors, "SMTPOutcomeUnknownError": SMTPOutcomeUnknownError}
    return Implementation(
        cls.__name__,
        cls,
        send,
        errors,
        lambda script: {"auth_in_clear": script.auth_in_clear, "pipelining": script.pipelining},
    )


RULE_EXAMPLES: dict[str, tuple[Conversation, type[_Model]]] = {
    "pipelining": (
        conversation(
            Policy(extensions=PIPELINING, answers=answers(MAIL=(reply(550, "5.7.1 no"),))),
            sendmail(BOB, CAROL),
            Step("noop"),
        ),
        _PipeliningModel,
    ),
    "auth-in-clear-refused": (
        conversation(
            Policy(extensions=("AUTH PLAIN",)),
            Step("login", ("user", "secret")),
            Step("noop"),
            auth_in_clear=False,
        ),
        _AuthInClearModel,
    ),
    "credentials-control-characters": (
        conversation(
            Policy(extensions=("AUTH PLAIN",)), Step("auth_plain", ("us\0er", "x")), Step("noop")
        ),
        _CredentialsModel,
    ),
    "outcome-unknown": (
        conversation(
            Policy(answers=answers(END=(close_silently(),), RCPT=(reply(550, "no"),))),
            sendmail(BOB, CAROL),
            Step("noop"),
        ),
        _OutcomeUnknownModel,
    ),
    "starttls-injection": (
        conversation(
            Policy(extensions=("STARTTLS",), answers=answers(STARTTLS=(STARTTLS_INJECTED,))),
            Step("noop"),
            local_hostname="client.test",
            start_tls=True,
        ),
        _InjectionModel,
    ),
    "unsolicited-reply": (
        conversation(
            Policy(answers=answers(NOOP=(Answer((b"250 ok",), surplus=(b"250 again",)),))),
            Step("noop"),
            Step("noop"),
            Step("noop"),
        ),
        _UnsolicitedModel,
    ),
    "unparsable-reply-closes": (
        conversation(Policy(answers=answers(NOOP=(MALFORMED,))), Step("noop"), Step("noop")),
        _UnparsableModel,
    ),
    "addresses-checked-first": (
        conversation(Policy(), sendmail(BOB, "ctl\x01char@x.test"), Step("noop")),
        _AddressModel,
    ),
    "line-break-in-address": (
        conversation(Policy(), sendmail(BOB, "crlf\r\nrset@x.test"), Step("noop")),
        _LineBreakModel,
    ),
    "malformed-reply-refused": (
        conversation(Policy(answers=answers(NOOP=(LENIENT[0],))), Step("noop"), Step("noop")),
        _MalformedModel,
    ),
    "two-hundred-is-success": (
        conversation(
            Policy(answers=answers(RCPT=(reply(252, "2.1.5 Cannot VRFY user"),))),
            sendmail(BOB, CAROL),
            Step("noop"),
        ),
        _TwoHundredModel,
    ),
    "closed-after-421": (
        conversation(Policy(answers=answers(END=(CLOSE_421,))), sendmail(BOB), Step("noop")),
        _ClosedAfter421Model,
    ),
    "reply-limits": (
        conversation(Policy(answers=answers(NOOP=(MANY_LINES,))), Step("noop"), Step("noop")),
        _ReplyLimitsModel,
    ),
}


def test_every_rule_has_a_pinned_example() -> None:
    assert sorted(RULE_EXAMPLES) == sorted(DEVIATIONS)
    for rule in DEVIATIONS.values():
        assert rule.summary and rule.__doc__ and rule.__doc__.startswith(rule.name + " -- ")


@pytest.mark.parametrize("rule", sorted(RULE_EXAMPLES))
def test_aiosmtplib_needs_no_rule_on_a_rule_example(rule: str) -> None:
    agree_with_itself(RULE_EXAMPLES[rule][0])


@pytest.mark.parametrize("rule", sorted(RULE_EXAMPLES))
def test_each_rule_explains_its_model(rule: str) -> None:
    conv, cls = RULE_EXAMPLES[rule]
    verdict = check(conv, THEIRS, model(cls))
    agree(verdict)
    assert rule in verdict.rules, verdict.report()


@pytest.mark.parametrize("rule", sorted(RULE_EXAMPLES))
def test_no_other_rule_explains_a_models_difference(rule: str) -> None:
    # Each rule is needed for its own example: without it, the difference is unexplained.
    conv, cls = RULE_EXAMPLES[rule]
    others = {name: r for name, r in DEVIATIONS.items() if name != rule}
    verdict = check(conv, THEIRS, model(cls), rules=others)
    assert not verdict.ok, verdict.report()


@pytest.mark.parametrize("rule", sorted(RULE_EXAMPLES))
def test_rule_example_versus_smtpclient_aio(rule: str) -> None:
    implementation = ours()
    verdict = check(RULE_EXAMPLES[rule][0], THEIRS, implementation)
    agree(verdict)
    if rule not in verdict.rules:
        pytest.fail(
            f"{rule}: documented, but smtpclient.aio does not deviate here\n{verdict.report()}",
            pytrace=False,
        )


#: Where smtpclient.aio refuses a reply over the engine's limits: the greeting (its code
#: 220, and 250: aiosmtplib's SMTPConnectResponseError), EHLO in connect(), a pipelined
#: RCPT, and the reply to the final dot (SMTPOutcomeUnknownError: the verdict is unknown).
REPLY_LIMITS_PLACES = {
    "greeting line": (Policy(Answer((b"220 " + b"g" * MAX_REPLY_LINE_LENGTH,))), Step("noop")),
    "greeting 250": (Policy(LONG_LINE), Step("noop")),
    "EHLO lines": (Policy(answers=answers(EHLO=(MANY_LINES,))), Step("noop")),
    "pipelined RCPT": (
        Policy(extensions=PIPELINING, answers=answers(RCPT=(LONG_LINE,))),
        sendmail(BOB, CAROL),
    ),
    "final dot": (Policy(answers=answers(END=(MANY_LINES,))), sendmail(BOB, CAROL)),
}


@pytest.mark.parametrize("place", sorted(REPLY_LIMITS_PLACES))
def test_reply_limits_versus_smtpclient_aio(place: str) -> None:
    implementation = ours()
    policy, step = REPLY_LIMITS_PLACES[place]
    conv = conversation(policy, step, Step("noop"))
    agree_with_itself(conv)
    verdict = check(conv, THEIRS, implementation)
    agree(verdict)
    assert verdict.rules == ("reply-limits",), verdict.report()


NUL = "nul\0byte@x.test"


def _send(to: list[str], *, utf8: bool = False) -> Conversation:
    """The module's ``send`` of a str message to ``to``, PIPELINING offered."""
    options: tuple[tuple[str, Any], ...] = (("mail_options", ["SMTPUTF8"]),) if utf8 else ()
    step = Step(
        "send",
        (MESSAGE,),
        (("sender", ALICE), ("recipients", to), ("local_hostname", "x.test"), *options),
    )
    return Conversation(AioPolicy(Policy(extensions=PIPELINING)), Script("send", (step,)))


#: An address neither library can send (a control character; non-ASCII without
#: SMTPUTF8): aiosmtplib stops at it after MAIL and an RCPT, is refused its MAIL first
#: (SMTPSenderRefused, then RSET), has its MAIL closed (SMTPServerDisconnected), or, in
#: send(), says QUIT after it.
ADDRESS_PLACES = {
    "NUL after an RCPT": conversation(Policy(), sendmail(BOB, NUL), Step("noop")),
    "SOH after an RCPT": conversation(Policy(), sendmail(BOB, "a\x01b@x.test"), Step("noop")),
    "DEL, pipelined": conversation(
        Policy(extensions=PIPELINING), sendmail(BOB, "Del <d\x7fel@x.test>"), Step("noop")
    ),
    "non-ASCII after an RCPT": conversation(Policy(), sendmail(BOB, "jürgen@x.test"), Step("noop")),
    "MAIL refused": conversation(
        Policy(answers=answers(MAIL=(reply(550, "5.7.1 no"),))), sendmail(BOB, NUL), Step("noop")
    ),
    "MAIL closed": conversation(
        Policy(answers=answers(MAIL=(close_silently(),))),
        sendmail(BOB, "jürgen@x.test"),
        Step("noop"),
    ),
    "RCPT closed": conversation(
        Policy(answers=answers(RCPT=(CLOSE_421,))), sendmail(BOB, NUL), Step("noop")
    ),
    "send": _send([BOB, NUL]),
}


@pytest.mark.parametrize("place", sorted(ADDRESS_PLACES))
def test_addresses_checked_first_versus_smtpclient_aio(place: str) -> None:
    implementation = ours()
    conv = ADDRESS_PLACES[place]
    agree_with_itself(conv)
    verdict = check(conv, THEIRS, implementation)
    agree(verdict)
    assert verdict.rules == ("addresses-checked-first",), verdict.report()


WELL_FORMED = (b"250 ok\r\n", b"250\r\n", b"250-a\r\n250 b\r\n", b"250-\r\n250\r\n", b"599 x\r\n")
MALFORMED_REPLIES = (
    b"+25 plus sign\r\n",
    b"2_5 underscore\r\n",
    b"250-first\r\n251 second\r\n",
    b"250-bare\n250 lf\r\n",
    b"250 a\rb\r\n",
    b"250-unfinished\r\n",
    b"250 no line end",
    b"250x\r\n",
    b"150 one\r\n",
    b"abc not a reply code\r\n",
)


def test_the_reply_grammar_is_checked_apart_from_the_engine() -> None:
    # deviations._well_formed decides "malformed" for malformed-reply-refused and
    # outcome-unknown: RFC 5321's grammar, written apart from smtp_core's parser.
    assert all(_well_formed(answer) for answer in WELL_FORMED)
    assert not any(_well_formed(answer) for answer in MALFORMED_REPLIES)
    assert _well_formed(b"250 ok\r\n250 2.0.0 surplus\r\n")  # two replies, each whole


def _dot(code: int) -> Answer:
    return reply(code, f"{code // 100}.0.0 queued")


BY_HAND = (Step("mail", (ALICE,)), Step("rcpt", (BOB,)), Step("data", (MESSAGE,)))
#: Each other rule, where smtpclient.aio shows it: (the rule, the server, the steps).
PLACES: dict[str, tuple[str, Policy, tuple[Step, ...]]] = {
    # Every 2yz a success: aiosmtplib's errors dict, SMTPRecipientsRefused and RSET,
    # SMTPSenderRefused and RSET, SMTPDataError and RSET, or the exception by hand.
    "252 to one RCPT of two": (
        "two-hundred-is-success",
        Policy(answers=answers(RCPT=(_dot(252),))),
        (sendmail(BOB, CAROL),),
    ),
    "252 to the only RCPT": (
        "two-hundred-is-success",
        Policy(answers=answers(RCPT=(_dot(252),))),
        (sendmail(BOB),),
    ),
    "252 to the only RCPT, pipelined": (
        "two-hundred-is-success",
        Policy(extensions=PIPELINING, answers=answers(RCPT=(_dot(252),))),
        (sendmail(BOB),),
    ),
    "251 to MAIL": (
        "two-hundred-is-success",
        Policy(answers=answers(MAIL=(_dot(251),))),
        (sendmail(BOB, CAROL),),
    ),
    "252 to MAIL, pipelined": (
        "two-hundred-is-success",
        Policy(extensions=PIPELINING, answers=answers(MAIL=(_dot(252),))),
        (sendmail(BOB, CAROL),),
    ),
    "252 to the final dot": (
        "two-hundred-is-success",
        Policy(answers=answers(END=(_dot(252),), RCPT=(reply(550, "no"),))),
        (sendmail(BOB, CAROL),),
    ),
    "by hand": (
        "two-hundred-is-success",
        Policy(answers=answers(MAIL=(_dot(252),), RCPT=(_dot(252),), END=(_dot(251),))),
        BY_HAND,
    ),
    # A malformed reply aiosmtplib reads its own way: code -1 and closed.
    "+25 to EHLO": ("malformed-reply-refused", Policy(answers=answers(EHLO=(LENIENT[0],))), ()),
    "bare LF in the greeting": ("malformed-reply-refused", Policy(LENIENT[3]), ()),
    "two codes to RCPT": (
        "malformed-reply-refused",
        Policy(answers=answers(RCPT=(LENIENT[2],))),
        (sendmail(BOB, CAROL),),
    ),
    "two codes to RCPT, pipelined": (
        "malformed-reply-refused",
        Policy(extensions=PIPELINING, answers=answers(RCPT=(LENIENT[2],))),
        (sendmail(BOB, CAROL),),
    ),
    "2_5 to NOOP": ("malformed-reply-refused", Policy(answers=answers(NOOP=(LENIENT[1],))), ()),
    # A reply aiosmtplib cannot parse: both raise code -1; aiosmtplib still writes RSET.
    "unparsable reply to DATA": (
        "unparsable-reply-closes",
        Policy(answers=answers(DATA=(MALFORMED,))),
        (sendmail(BOB),),
    ),
    "unparsable reply to MAIL, pipelined": (
        "unparsable-reply-closes",
        Policy(extensions=PIPELINING, answers=answers(MAIL=(MALFORMED,))),
        (sendmail(BOB, CAROL),),
    ),
    "unparsable reply to DATA, pipelined": (
        "unparsable-reply-closes",
        Policy(extensions=PIPELINING, answers=answers(DATA=(HUGE_LINE,))),
        (sendmail(BOB, CAROL),),
    ),
    # A verdict the engine refuses: the outcome is unknown.
    "unparsable verdict": (
        "outcome-unknown",
        Policy(answers=answers(END=(MALFORMED,))),
        (sendmail(BOB, CAROL),),
    ),
    "verdict over 8192 octets": (
        "outcome-unknown",
        Policy(answers=answers(END=(HUGE_LINE,))),
        (sendmail(BOB, CAROL),),
    ),
    "+25 verdict": (
        "outcome-unknown",
        Policy(answers=answers(END=(LENIENT[0],))),
        (sendmail(BOB, CAROL),),
    ),
    "bare LF in the verdict, by hand": (
        "outcome-unknown",
        Policy(answers=answers(END=(LENIENT[3],))),
        BY_HAND,
    ),
    # A 421 to DATA or the final dot (aiosmtplib closes after any other 421 itself):
    # aiosmtplib still writes RSET; smtpclient.aio closes.
    "421 to DATA": (
        "closed-after-421",
        Policy(answers=answers(DATA=(CLOSE_421,))),
        (sendmail(BOB),),
    ),
    "421 to DATA, pipelined": (
        "closed-after-421",
        Policy(extensions=PIPELINING, answers=answers(DATA=(CLOSE_421,))),
        (sendmail(BOB, CAROL),),
    ),
    "421 to the final dot": (
        "closed-after-421",
        Policy(answers=answers(END=(CLOSE_421,))),
        (sendmail(BOB),),
    ),
}


@pytest.mark.parametrize("place", sorted(PLACES))
def test_each_rule_where_smtpclient_aio_shows_it(place: str) -> None:
    implementation = ours()
    rule, policy, steps = PLACES[place]
    conv = conversation(policy, *steps, Step("noop"))
    agree_with_itself(conv)
    verdict = check(conv, THEIRS, implementation)
    agree(verdict)
    assert set(verdict.rules) == {rule}, verdict.report()


# -- README's table and the rules, one to one ------------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"
#: Rows of README's "Differences from aiosmtplib" table that no rule stands for, because
#: the harness cannot see them; each with the reason.
UNOBSERVED_ROWS = {
    # Timeouts: every reply the harness's server owes comes at once or within 60 ms, and
    # the client's timeout is 5 s, 10 s or none (compare.STEP_LIMIT): no wait is ever cut
    # short, so neither the 600 s floor of the final dot nor ``timeouts=`` shows.
    "one `timeout` (60 s) for every wait": "no timeout is ever reached",
    # TLS: every run is given ``tls_context`` (compare.tls_material), so a context the
    # library builds itself, and its minimum version, is never used.
    "its own contexts allow any TLS version the system allows": "contexts are always given",
}


def _readme_rows() -> list[str]:
    """The first cell of each row of README's "Differences from aiosmtplib" table."""
    text = README.read_text(encoding="utf-8")
    section = text.split("### Differences from aiosmtplib", 1)[1]
    table = section.strip().split("\n\n", 1)[0].splitlines()
    assert table[0].startswith("| aiosmtplib |"), table[0]
    assert re.fullmatch(r"\|( --- \|)+", table[1]), table[1]
    return [re.split(r" \| ", line.strip("| "), maxsplit=1)[0] for line in table[2:]]


def test_readme_rows_and_rules_agree() -> None:
    rows = _readme_rows()
    assert len(rows) == len(set(rows)), rows
    for rule in DEVIATIONS.values():
        assert rule.row in rows, f"{rule.name}: README has no row {rule.row!r}"
    ruled = {rule.row for rule in DEVIATIONS.values()}
    assert not ruled & set(UNOBSERVED_ROWS), ruled & set(UNOBSERVED_ROWS)
    for row in rows:
        assert row in ruled or row in UNOBSERVED_ROWS, f"README row without a rule: {row!r}"
    assert set(UNOBSERVED_ROWS) <= set(rows), set(UNOBSERVED_ROWS) - set(rows)


# -- STARTTLS against a real server (aiosmtpd with a trustme certificate) ---------------------


class _Keeper:
    def __init__(self) -> None:
        self.envelopes: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        )
        return "250 2.0.0 kept"


@contextlib.contextmanager
def _aiosmtpd_tls() -> Iterator[tuple[Controller, _Keeper]]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    keeper = _Keeper()
    controller = Controller(
        keeper,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=context,
        server_hostname="aiosmtpd.test",
    )
    controller.start()
    try:
        controller.ca = ca  # type: ignore[attr-defined]
        yield controller, keeper
    finally:
        controller.stop()


def _starttls_session(impl: Implementation) -> list[object]:
    """connect() with STARTTLS (start_tls=None: offered, so used), send_message, quit."""
    with _aiosmtpd_tls() as (controller, keeper):
        ca = controller.ca  # type: ignore[attr-defined]
        client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        ca.configure_trust(client_context)
        smtp = impl.smtp(
            hostname="127.0.0.1",
            port=controller.port,
            local_hostname="client.test",
            tls_context=client_context,
            **impl.own_options(Script("manual", ())),
        )
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = ALICE, BOB, "over TLS"
        message.set_content("sent after STARTTLS\n")

        async def session() -> list[object]:
            seen: list[object] = [tuple(await smtp.connect())]
            seen.append(smtp.get_transport_info("sslcontext") is not None)
            seen.append(tuple(await smtp.ehlo()))
            seen.append(await smtp.send_message(message))
            seen.append(tuple(await smtp.quit()))
            await closed_down()
            return seen

        result = asyncio.run(session())
        return [*result, keeper.envelopes]


def test_starttls_against_aiosmtpd() -> None:
    theirs = _starttls_session(load(THEIRS))
    assert theirs[1] is True
    assert theirs == _starttls_session(load(THEIRS))


def test_starttls_against_aiosmtpd_versus_smtpclient_aio() -> None:
    implementation = ours()
    assert _starttls_session(implementation) == _starttls_session(load(THEIRS))
