"""Run one conversation through smtplib and through smtpclient, and compare.

:func:`run` plays a :class:`~tests.differential.scenarios.Script` against a fresh
:class:`~tests.differential.server.ReactiveServer` with one library and returns
a :class:`Transcript`: for each step, what it returned or raised (type and the
attributes ``smtp_code``, ``smtp_error``, ``recipients``, ``sender``), the
client's state afterwards (connected, ``does_esmtp``, ``ehlo_resp``,
``helo_resp``, ``esmtp_features``), and the server's log for the bytes the step
sent.  The client's socket is wrapped so the harness knows how many bytes each
step wrote, which is how the server's log is cut into steps.

:func:`compare` walks both transcripts step by step.  Where a step differs,
the rules of :mod:`tests.differential.deviations` are asked, one at a time,
whether the difference is theirs: a rule either rewrites its own difference
away (so the rest of the step must then be equal) or, for a deviation after
which the two sessions cannot stay in step (smtpclient closed where smtplib
carries on, or the server has seen different commands), ends the comparison.
A difference no rule explains is the :class:`Verdict`'s failure, shown with
both transcripts.
"""

from __future__ import annotations

import difflib
import email.message
import smtplib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

import smtpclient
from tests.differential.scenarios import Conversation, Step
from tests.differential.server import Entry, ReactiveServer, ServerState, entries_between

if TYPE_CHECKING:
    from tests.differential.deviations import Deviation, Explanation

__all__ = [
    "ClientState",
    "Difference",
    "Outcome",
    "StepRecord",
    "Transcript",
    "Verdict",
    "canon",
    "check",
    "compare",
    "run",
]

#: The client's timeout: every reply the server owes comes at once, so this is
#: only ever reached by a bug, and it is short enough not to hang the suite.
CLIENT_TIMEOUT = 5.0
CLIENT_NAME = "client.test"
IMPLEMENTATIONS: Mapping[str, ModuleType] = {"smtplib": smtplib, "smtpclient": smtpclient}
#: The exception attributes compared (smtplib's).
EXCEPTION_ATTRIBUTES = ("smtp_code", "smtp_error", "recipients", "sender")


def canon(value: object) -> str:
    """A canonical text for comparing values: dicts sorted, bytes and str told apart.

    Comparing the texts, never the values, keeps ``b"x" == "x"`` (a
    ``BytesWarning`` under ``python -bb``) out of the comparison.
    """
    if isinstance(value, dict):
        items = sorted(f"{canon(k)}: {canon(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, tuple):
        return "(" + ", ".join(canon(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(canon(v) for v in value) + "]"
    return repr(value)


# -- records ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a step did: returned a value, raised, or was not run.

    Only ``kind``, ``value``, ``exc_type`` and ``attrs`` are compared (as
    canonical texts); ``message``, ``exc_mro`` and ``raw`` are for the rules
    and the report.
    """

    kind: str  # "return", "raise" or "skipped"
    value: str = ""
    exc_type: str = ""
    attrs: str = ""
    message: str = field(default="", compare=False)
    exc_mro: tuple[str, ...] = field(default=(), compare=False)
    raw: Any = field(default=None, compare=False)

    @classmethod
    def returned(cls, value: object) -> Outcome:
        return cls("return", canon(value), raw=value)

    @classmethod
    def raised(cls, exc: BaseException) -> Outcome:
        attrs = {name: getattr(exc, name) for name in EXCEPTION_ATTRIBUTES if hasattr(exc, name)}
        return cls(
            "raise",
            exc_type=type(exc).__name__,
            attrs=canon(attrs),
            message=str(exc),
            exc_mro=tuple(c.__name__ for c in type(exc).__mro__),
            raw=attrs,
        )

    def is_a(self, name: str) -> bool:
        """The step raised an exception of class ``name`` (or a subclass)."""
        return self.kind == "raise" and name in self.exc_mro

    def describe(self) -> str:
        if self.kind == "return":
            return f"returned {self.value}"
        if self.kind == "raise":
            attrs = "" if self.attrs == "{}" else f" {self.attrs}"
            return f"raised {self.exc_type}{attrs}: {self.message[:200]}"
        return "not run (no client object)"


@dataclass(frozen=True)
class ClientState:
    """The client object's visible state after a step."""

    connected: bool = False
    does_esmtp: bool = False
    ehlo_resp: str = "None"
    helo_resp: str = "None"
    esmtp_features: str = "{}"

    def describe(self) -> str:
        if not self.connected:
            return "closed"
        return "connected" + (", esmtp" if self.does_esmtp else "")


@dataclass(frozen=True)
class StepRecord:
    """One step of one run: the call, its outcome, and what the server saw of it."""

    index: int
    step: Step
    outcome: Outcome
    state: ClientState
    entries: tuple[Entry, ...]
    server_state: ServerState

    @property
    def received(self) -> bytes:
        """The bytes the server received during the step."""
        return b"".join(entry.raw for entry in self.entries)

    def commands(self) -> list[Entry]:
        """The step's entries other than the greeting."""
        return [entry for entry in self.entries if entry.kind != "greeting"]

    def describe(self) -> list[str]:
        lines = [
            f"[{self.index}] {self.step!r} -> {self.outcome.describe()} ({self.state.describe()})"
        ]
        for entry in self.entries:
            lines.extend("    " + line for line in entry.describe())
        return lines


@dataclass(frozen=True)
class Transcript:
    """One run: every step, and everything the server received."""

    implementation: str
    steps: tuple[StepRecord, ...]
    received: bytes
    log: tuple[Entry, ...]

    def describe(self) -> str:
        lines = [f"--- {self.implementation} ---"]
        for record in self.steps:
            lines.extend(record.describe())
        return "\n".join(lines)


# -- running ---------------------------------------------------------------------------------


class _RecordingSocket:
    """A socket that counts what is written through it (everything else is the socket's)."""

    def __init__(self, sock: Any, recorder: _Recorder) -> None:
        self._sock = sock
        self._recorder = recorder

    def sendall(self, data: Any, *args: Any) -> None:
        self._recorder.sent += bytes(data)
        self._sock.sendall(data, *args)

    def send(self, data: Any, *args: Any) -> int:
        sent: int = self._sock.send(data, *args)
        self._recorder.sent += bytes(data)[:sent]
        return sent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _Recorder:
    def __init__(self) -> None:
        self.sent = bytearray()
        self.sockets: list[Any] = []

    def wrap(self, sock: Any) -> _RecordingSocket:
        self.sockets.append(sock)
        return _RecordingSocket(sock, self)

    def close_all(self) -> None:
        for sock in self.sockets:
            sock.close()


def _recording_class(base: type[Any], recorder: _Recorder) -> type[Any]:
    """``base`` with its socket wrapped in a :class:`_RecordingSocket`."""

    def _get_socket(self: Any, host: str, port: int, timeout: float | None) -> Any:
        return recorder.wrap(base._get_socket(self, host, port, timeout))

    return type(base.__name__, (base,), {"_get_socket": _get_socket})


def _message(sender: str, to: tuple[str, ...], subject: str, body: str, bcc: str) -> Any:
    msg = email.message.Message()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    if bcc:
        msg["Bcc"] = bcc
    msg["Subject"] = subject
    msg.set_payload(body)
    return msg


def _perform(smtp: Any, step: Step) -> object:
    method, args = step.method, step.args
    if method == "putcmd+getreply":
        smtp.putcmd(*args)
        return smtp.getreply()
    if method == "send+getreply":
        smtp.send(*args)
        return smtp.getreply()
    if method == "send_message":
        return smtp.send_message(_message(*args))
    if method == "auth":
        mechanism, smtp.user, smtp.password = args
        authobject = getattr(smtp, "auth_" + mechanism.lower().replace("-", "_"))
        return smtp.auth(mechanism, authobject)
    if method == "__exit__":
        return smtp.__exit__(None, None, None)
    result: object = getattr(smtp, method)(*args)
    return result


def _attempt(call: Callable[[], object]) -> Outcome:
    try:
        value = call()
    except Exception as exc:  # every exception is an outcome to compare
        return Outcome.raised(exc)
    return Outcome.returned(value)


def _client_state(smtp: Any) -> ClientState:
    if smtp is None:
        return ClientState()
    return ClientState(
        connected=smtp.sock is not None,
        does_esmtp=bool(smtp.does_esmtp),
        ehlo_resp=canon(smtp.ehlo_resp),
        helo_resp=canon(smtp.helo_resp),
        esmtp_features=canon(dict(smtp.esmtp_features)),
    )


def run(implementation: str, conversation: Conversation) -> Transcript:
    """Play ``conversation`` with ``implementation`` (``"smtplib"`` or ``"smtpclient"``)."""
    module = IMPLEMENTATIONS[implementation]
    policy, script = conversation.policy, conversation.script
    recorder = _Recorder()
    cls = _recording_class(module.LMTP if policy.lmtp else module.SMTP, recorder)
    done: list[tuple[Step, Outcome, ClientState, int]] = []
    with ReactiveServer(policy) as server:
        try:
            smtp: Any = None
            host, port = server.host, server.port
            options = {"local_hostname": CLIENT_NAME, "timeout": CLIENT_TIMEOUT}
            if script.construct:
                first = Step("SMTP", (host, "<port>"))

                def construct() -> None:
                    nonlocal smtp
                    smtp = cls(host, port, **options)

                outcome = _attempt(construct)
            else:
                smtp = cls(**options)
                first = Step("connect", (host, "<port>"))
                outcome = _attempt(lambda: smtp.connect(host, port))
            done.append((first, outcome, _client_state(smtp), len(recorder.sent)))
            rest = list(script.steps)
            if script.with_block:
                rest.append(Step("__exit__"))
            rest.append(Step("close"))
            for step in rest:
                if step.method == "close":
                    server.wait_received(len(recorder.sent))
                if smtp is None:
                    outcome = Outcome("skipped")
                else:
                    outcome = _attempt(lambda step=step: _perform(smtp, step))  # type: ignore[misc]
                done.append((step, outcome, _client_state(smtp), len(recorder.sent)))
        finally:
            recorder.close_all()
    if server.error is not None:
        raise server.error
    received = bytes(server.received)
    if received != bytes(recorder.sent):
        raise AssertionError(
            f"harness: the server received {received!r}, the client wrote {bytes(recorder.sent)!r}"
        )
    log = list(server.log)
    records = []
    start = 0
    state = ServerState()
    for index, (step, outcome, client, end) in enumerate(done):
        entries = list(entries_between(log, start, end))
        if index == 0:
            entries = [e for e in log if e.kind == "greeting"] + entries
        if entries:
            state = entries[-1].state
        records.append(StepRecord(index, step, outcome, client, tuple(entries), state))
        start = end
    return Transcript(implementation, tuple(records), received, tuple(log))


# -- comparing -------------------------------------------------------------------------------


def differing(std: StepRecord, ours: StepRecord) -> tuple[str, ...]:
    """The aspects in which two records of a step differ."""
    aspects = []
    if std.outcome != ours.outcome:
        aspects.append("outcome")
    if std.state != ours.state:
        aspects.append("client state")
    if std.received != ours.received:
        aspects.append("bytes received")
    if std.server_state != ours.server_state:
        aspects.append("server state")
    return tuple(aspects)


@dataclass(frozen=True)
class Difference:
    """The first difference no rule explains."""

    index: int
    aspects: tuple[str, ...]
    std: StepRecord
    ours: StepRecord

    def describe(self, first: str = "smtplib", second: str = "smtpclient") -> str:
        s, o = self.std, self.ours
        a, b = f"{first:<10}", f"{second:<10}"
        lines = [f"step [{self.index}] {s.step!r} differs in: {', '.join(self.aspects)}"]
        if "outcome" in self.aspects:
            lines += [f"  {a} {s.outcome.describe()}", f"  {b} {o.outcome.describe()}"]
        if "client state" in self.aspects:
            lines += [f"  {a} state {s.state}", f"  {b} state {o.state}"]
        if "bytes received" in self.aspects:
            lines.append(f"  bytes the server received (- {first}, + {second}):")
            lines += ["    " + line for line in _diff(s.received, o.received)]
        if "server state" in self.aspects:
            lines += [
                f"  server after {a} {s.server_state}",
                f"  server after {b} {o.server_state}",
            ]
        return "\n".join(lines)


def _shown_lines(data: bytes) -> list[str]:
    """``data`` cut after each LF, each piece shown as a (shortened) bytes literal."""
    pieces = data.splitlines(keepends=True)
    return [repr(p) if len(p) <= 100 else repr(p[:80]) + f"...({len(p)} octets)" for p in pieces]


def _diff(std: bytes, ours: bytes) -> list[str]:
    return list(difflib.unified_diff(_shown_lines(std), _shown_lines(ours), lineterm="", n=2))[2:]


@dataclass(frozen=True)
class Verdict:
    """The comparison of one conversation."""

    conversation: Conversation
    std: Transcript
    ours: Transcript
    explanations: tuple[Explanation, ...]
    unexplained: Difference | None = None

    @property
    def ok(self) -> bool:
        return self.unexplained is None

    @property
    def rules(self) -> tuple[str, ...]:
        """The names of the rules that explained a difference, in order."""
        return tuple(e.rule for e in self.explanations)

    def report(self) -> str:
        """Everything a reader needs: the difference, the rules applied, both transcripts."""
        first, second = self.std.implementation, self.ours.implementation
        head = (
            f"{second} behaves like {first} (within the documented deviations)"
            if self.unexplained is None
            else f"{second} differs from {first}, and no documented deviation explains it:\n"
            + self.unexplained.describe(first, second)
        )
        parts = [head]
        if self.explanations:
            parts.append(
                "Explained differences:\n"
                + "\n".join(f"  [{e.index}] {e.rule}: {e.note}" for e in self.explanations)
            )
        parts += [self.conversation.describe(), self.std.describe(), self.ours.describe()]
        return "\n\n".join(parts)


def compare(
    conversation: Conversation,
    std: Transcript,
    ours: Transcript,
    rules: Mapping[str, Deviation] | None = None,
) -> Verdict:
    """Compare two runs of ``conversation`` step by step (see the module docstring)."""
    if rules is None:
        from tests.differential.deviations import DEVIATIONS

        rules = DEVIATIONS
    from tests.differential.deviations import Context

    explanations: list[Explanation] = []
    for index, (std_step, ours_step) in enumerate(zip(std.steps, ours.steps, strict=True)):
        s, o = std_step, ours_step
        applied: set[str] = set()
        while aspects := differing(s, o):
            context = Context(conversation, std, ours, index, s, o)
            found = None
            for name, rule in rules.items():
                if name not in applied and (found := rule.explain(context)) is not None:
                    break
            if found is None:
                difference = Difference(index, aspects, s, o)
                return Verdict(conversation, std, ours, tuple(explanations), difference)
            applied.add(found.rule)
            explanations.append(found)
            if found.diverged:
                return Verdict(conversation, std, ours, tuple(explanations))
            s, o = found.std_step, found.ours_step
    return Verdict(conversation, std, ours, tuple(explanations))


def check(
    conversation: Conversation, *, first: str = "smtplib", second: str = "smtpclient"
) -> Verdict:
    """Run ``conversation`` through ``first`` and ``second`` and compare the two runs.

    The deviation rules apply to smtplib against smtpclient only; a library
    run against itself must agree exactly (the harness's determinism check).
    """
    std = run(first, conversation)
    ours = run(second, conversation)
    rules: Mapping[str, Deviation] | None = {}
    if (first, second) == ("smtplib", "smtpclient"):
        rules = None  # DEVIATIONS
    return compare(conversation, std, ours, rules=rules)
