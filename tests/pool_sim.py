"""A simulated world for :class:`smtp_core.pool.Scheduler`: a clock, servers, a trace.

Hypothesis draws the world: when messages arrive, how long each action takes
and how the server answers it.  :func:`simulate` runs the scheduler the way a
runner does (actions run concurrently; the clock jumps to the earliest of an
action's end, an arrival and :meth:`~smtp_core.pool.Scheduler.deadline`) and
records every action begun and ended, for the property tests to check.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from hypothesis import strategies as st

import smtp_core as sc
from smtp_core.pool import (
    Action,
    Check,
    Close,
    Message,
    MessageResult,
    Open,
    Outcome,
    Policy,
    Scheduler,
    Send,
)

__all__ = [
    "SENDER",
    "Ended",
    "Scenario",
    "Started",
    "Trace",
    "reply",
    "scenarios",
    "simulate",
    "too_many",
    "transaction",
]

SENDER = "from@example.test"

T = TypeVar("T")

# Reply texts with the enhanced codes a real server gives (RFC 3463).
_TEXT = {
    250: b"2.1.5 ok",
    354: b"go ahead",
    421: b"4.4.2 closing connection",
    450: b"4.2.0 mailbox busy",
    451: b"4.3.0 try again later",
    452: b"4.5.3 too many recipients",
    550: b"5.1.1 no such user",
    552: b"5.5.3 too many recipients",
    554: b"5.6.0 rejected",
}


def reply(
    code: int, command: sc.BaseCommand | None = None, recipient: str | None = None
) -> sc.Reply:
    """A reply with the usual text for ``code``, answering ``command`` (NOOP if none)."""
    text = _TEXT.get(code, b"something")
    return sc.Reply(command if command is not None else sc.Noop(), code, (text,), recipient)


def transaction(
    send: Send, rcpt: Sequence[int], final: int = 250, mail: int = 250
) -> sc.TransactionResult:
    """The result of ``send`` when MAIL draws ``mail``, each RCPT ``rcpt[i]``, the dot ``final``.

    Built as :func:`smtp_core.procedures.send_mail` builds it: a refused MAIL
    settles every recipient; the reply to the end of data settles the
    recipients whose RCPT was accepted; no accepted RCPT means no DATA.
    """
    assert len(rcpt) == len(send.recipients)
    mail_reply = reply(mail, sc.Mail(SENDER))
    if not mail_reply.is_positive:
        results = tuple(sc.RecipientResult(to, mail_reply, None) for to in send.recipients)
        return sc.TransactionResult(mail_reply, results, None, None)
    rcpt_replies = [reply(c, sc.Rcpt(to), to) for c, to in zip(rcpt, send.recipients, strict=True)]
    if not any(r.is_positive for r in rcpt_replies):
        results = tuple(
            sc.RecipientResult(to, r, r)
            for to, r in zip(send.recipients, rcpt_replies, strict=True)
        )
        return sc.TransactionResult(mail_reply, results, None, None, reset=True)
    final_reply = reply(final, sc.EndOfContent())
    results = tuple(
        sc.RecipientResult(to, final_reply if r.is_positive else r, r)
        for to, r in zip(send.recipients, rcpt_replies, strict=True)
    )
    return sc.TransactionResult(mail_reply, results, reply(354, sc.Data()), final_reply)


def too_many(r: sc.Reply) -> bool:
    """452, or 552 with 5.5.3: too many recipients (RFC 5321 §4.5.3.1.10)."""
    enhanced = r.enhanced
    return r.code == 452 or (enhanced is not None and enhanced[1:] == (5, 3))


# -- the world hypothesis draws ---------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """The pool's policy, the messages with their arrival times, when to cancel, and the servers.

    ``script`` is the servers' side, read in turn by each action begun: how
    long it takes and how it ends.  Each number picks from a list whose first
    entry is the plain case (no wait, success), so hypothesis shrinks a
    failure towards a world where everything works at once; past the end of
    the script, everything does.
    """

    policy: Policy
    arrivals: tuple[tuple[float, Message], ...]
    cancel_at: float | None
    script: bytes


_TIMES = (0.0, 0.0, 0.1, 0.5, 1.0, 2.0, 5.0, 30.0)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    """Small limits, so that every limit is reached."""
    return Policy(
        max_connections=draw(st.integers(1, 3)),
        max_messages=draw(st.integers(1, 4)),
        rate_limit=draw(st.none() | st.integers(1, 3)),
        rate_interval=draw(st.sampled_from((0.5, 1.0, 5.0))),
        idle_timeout=draw(st.sampled_from((0.0, 1.0, 5.0, 60.0))),
        check_after=draw(st.sampled_from((0.0, 0.5, 2.0, 10.0))),
        max_attempts=draw(st.integers(1, 4)),
        backoff=draw(st.sampled_from((0.0, 0.5, 2.0))),
        backoff_factor=draw(st.sampled_from((1.0, 2.0))),
        max_backoff=draw(st.sampled_from((1.0, 10.0))),
        max_recipients=draw(st.none() | st.integers(1, 3)),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A policy, one to six messages of one to four recipients, maybe a cancel, a script."""
    count = draw(st.integers(1, 6))
    arrivals: list[tuple[float, Message]] = []
    for m in range(count):
        n = draw(st.integers(1, 4))
        to = tuple(f"m{m}r{r}@example.test" for r in range(n))
        arrivals.append((draw(st.sampled_from(_TIMES)), Message(SENDER, to, b"Hi\r\n", key=m)))
    arrivals.sort(key=lambda a: a[0])
    last = arrivals[-1][0]
    later = draw(
        st.sampled_from((None,) * 12 + (0.0, 0.5, 3.0, 20.0))
    )  # cancel() in one run in four
    cancel_at = None if later is None else last + later
    # Bytes, one draw (a list of integers costs a draw each); at least 40:
    # hypothesis draws short ones by default, where little goes wrong.
    script = draw(st.binary(min_size=40, max_size=300))
    return Scenario(draw(policies()), tuple(arrivals), cancel_at, script)


class _Servers:
    """The servers' answers, read from a scenario's script."""

    def __init__(self, script: bytes) -> None:
        self._script = script
        self._next = 0

    def pick(self, options: Sequence[T]) -> T:
        at, self._next = self._next, self._next + 1
        return options[self._script[at] % len(options)] if at < len(self._script) else options[0]

    def duration(self) -> float:
        return self.pick(_TIMES)

    def outcome(self, action: Action) -> Outcome:
        """What the server makes of ``action``."""
        if isinstance(action, Send):
            return self._send(action)
        if isinstance(action, Open):
            return self._open()
        if isinstance(action, Check):
            kind = self.pick(("250", "250", "250", "421", "451", "reset"))
            return ConnectionResetError("reset by peer") if kind == "reset" else reply(int(kind))
        return None

    def _send(self, send: Send) -> Outcome:
        n = len(send.recipients)
        kind = self.pick(
            ("result",) * 6 + ("disconnected", "reset", "timeout", "unknown", "local", "bug")
        )
        if kind == "result":
            mail = self.pick((250,) * 6 + (451, 550, 421))
            codes = (250, 250, 250, 450, 550, 452, 552, 421, 451)
            rcpt = [self.pick(codes) for _ in range(n)]
            final = self.pick((250, 250, 250, 451, 554))
            return transaction(send, rcpt, final, mail)
        if kind == "unknown":
            # The dot went out; the verdict did not come back (LMTP may have
            # confirmed some recipients before that).
            # confirmed by LMTP, unknown, or refused at RCPT before the dot.
            fates = [self.pick(("delivered", "unknown", "refused")) for _ in range(n)]
            told = list(zip(send.recipients, fates, strict=True))
            delivered = tuple(to for to, fate in told if fate == "delivered")
            unknown = tuple(to for to, fate in told if fate == "unknown")
            return sc.OutcomeUnknown(sc.StageTimeout(sc.Stage.DATA_END, 600.0), delivered, unknown)
        if kind == "disconnected":
            return sc.ServerDisconnected("the server hung up")
        if kind == "reset":
            return ConnectionResetError("reset by peer")
        if kind == "timeout":
            return sc.StageTimeout(sc.Stage.RCPT, 5.0)
        if kind == "local":
            return sc.LocalProtocolError("the server does not take SMTPUTF8")
        return RuntimeError("a bug in the runner")

    def _open(self) -> Outcome:
        kind = self.pick(
            ("ok",) * 12 + ("reply", "reply", "refused", "refused", "421", "554", "local")
        )
        if kind == "ok":
            return None
        if kind == "reply":
            return reply(250, sc.Ehlo("client.test"))
        if kind == "refused":
            return ConnectionRefusedError("connection refused")
        if kind == "local":
            return sc.LocalProtocolError("TLS is required and the server offers no STARTTLS")
        return sc.ReplyError(sc.Greeting(int(kind), (b"go away",)))


# -- running it -------------------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    time: float
    action: Action


@dataclass(frozen=True)
class Ended:
    time: float
    action: Action
    outcome: Outcome


@dataclass
class Trace:
    """What happened: every action begun and ended, in order, and the results."""

    scenario: Scenario
    events: list[Started | Ended] = field(default_factory=list)
    results: list[MessageResult] = field(default_factory=list)
    done: bool = False
    steps: int = 0
    spins: list[str] = field(default_factory=list)  # deadline() not after the poll's now
    stall: str | None = None  # nothing in flight, no deadline, and not done

    @property
    def policy(self) -> Policy:
        return self.scenario.policy

    @property
    def messages(self) -> list[Message]:
        return [m for _, m in self.scenario.arrivals]

    def story(self) -> str:
        """The run, one action begun or ended a line."""
        lines = [f"{self.policy}"]
        for e in self.events:
            a = e.action
            what = f"{type(a).__name__}({a.conn}"
            if isinstance(a, Send):
                what += f", {a.message.key}, {list(a.recipients)}, try {a.attempt}"
            elif isinstance(a, Close):
                what += f", quit={a.quit}"
            what += ")"
            if isinstance(e, Ended):
                lines.append(f"{e.time:8.2f}   ended {what}: {_brief(e.outcome)}")
            else:
                lines.append(f"{e.time:8.2f} began {what}")
        lines += [f"result {r.message.key}: {[o.status for o in r.outcomes]}" for r in self.results]
        return "\n".join(lines)

    def sends(self) -> list[tuple[Started, Ended]]:
        """Each Send with its end, in the order they began."""
        ends = {id(e.action): e for e in self.events if isinstance(e, Ended)}
        return [
            (s, ends[id(s.action)])
            for s in self.events
            if isinstance(s, Started) and isinstance(s.action, Send) and id(s.action) in ends
        ]


def _brief(outcome: Outcome) -> str:
    if isinstance(outcome, sc.TransactionResult):
        return f"MAIL {outcome.mail_reply.code}, " + str([r.reply.code for r in outcome.recipients])
    if isinstance(outcome, sc.Reply):
        return str(outcome.code)
    return repr(outcome)


MAX_STEPS = 3000


def _is_done(scheduler: Scheduler) -> bool:
    return scheduler.done


def simulate(scenario: Scenario) -> Trace:
    """Run the scheduler in the world hypothesis draws; see the module's documentation."""
    scheduler = Scheduler(scenario.policy)
    servers = _Servers(scenario.script)
    trace = Trace(scenario)
    arrivals = list(scenario.arrivals)
    cancel_at = scenario.cancel_at
    in_flight: list[tuple[float, int, Action, Outcome]] = []
    seq = 0
    now = 0.0
    for trace.steps in range(1, MAX_STEPS + 1):
        while arrivals and arrivals[0][0] <= now:
            scheduler.submit(arrivals.pop(0)[1])
            if not arrivals:
                scheduler.finish()
        if cancel_at is not None and cancel_at <= now:
            scheduler.cancel()
            cancel_at = None
        while in_flight and in_flight[0][0] <= now:
            _, _, action, outcome = heapq.heappop(in_flight)
            trace.events.append(Ended(now, action, outcome))
            scheduler.report(action, outcome, now)
        for action in scheduler.poll(now):
            trace.events.append(Started(now, action))
            seq += 1
            ends = now + servers.duration()
            heapq.heappush(in_flight, (ends, seq, action, servers.outcome(action)))
        # The runners poll once per step: one poll must start all it can at `now`.
        if again := scheduler.poll(now):
            trace.spins.append(f"a second poll({now}) started {again}")
            break
        trace.results += scheduler.results()
        if _is_done(scheduler):
            trace.done = True
            break
        deadline = scheduler.deadline()
        if deadline is not None and deadline <= now:
            # The scheduler would be woken where nothing more happens.
            trace.spins.append(f"after poll({now}), deadline() is {deadline}")
            break
        times = [t for t in (deadline, cancel_at) if t is not None]
        times += [in_flight[0][0]] if in_flight else []
        times += [arrivals[0][0]] if arrivals else []
        if not times:
            trace.stall = f"at {now}: nothing in flight, no deadline, not done"
            break
        now = max(now, min(times))
    return trace
