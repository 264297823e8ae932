"""The fuzzing loop: choose a session, run it, learn from the replies, keep what is new.

Theory of operation (after AFLNet)
----------------------------------
Coverage is what the server's answers reveal: the set of ``(engine state,
reply code)`` pairs and ``(state, verb, reply code)`` transitions the sessions
reached.  The corpus starts with the built-in seeds; a session that reached
a pair or transition never seen before joins it, together with the number of
steps after which it first reached each pair.  A pair plays the part of
AFLNet's server state (AFLNet's states are reply codes; here the engine's
state says where in the session the code came).  To make the next session,
the fuzzer picks a pair (one chosen least often so far), a corpus session
that reached it, keeps that session's steps up to the pair, and mutates the
rest.  Now and then it runs a fresh valid session instead.

Findings: a *crash* when a connection is refused after a session ran (the
sessions so far are saved, since any of them may have caused it); a *hang*
when a due reply does not come within the stage timeout; a *violation* when
the engine or :mod:`._checks` rejects a reply.  A violation is run again alone
and, if it recurs, saved as that one session.  Each saved file replays with
``smtpclient fuzz --replay FILE``.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, final

from smtp_core import State

from ._mutate import Generator
from ._record import GENERATOR, SavedSession, dump_sessions
from ._runner import Connect, Coverage, SessionResult, SessionRunner
from ._seeds import seed_sessions
from ._steps import Step
from ._target import Target

__all__ = [
    "CORPUS_BYTES",
    "HISTORY",
    "HISTORY_BYTES",
    "MAX_CORPUS",
    "WEDGED",
    "Finding",
    "FuzzReport",
    "Fuzzer",
    "TargetUnreachable",
]

log = logging.getLogger("smtpclient.fuzz")

#: The most recent sessions kept to save with a crash or hang (older ones are dropped).
HISTORY: Final = 200
#: The most bytes (steps and replies) those sessions may hold together.
HISTORY_BYTES: Final = 32 * 1024 * 1024
#: The most sessions kept in the corpus (seeds included); the oldest mutant goes first.
MAX_CORPUS: Final = 500
#: The most bytes of steps the corpus may hold.
CORPUS_BYTES: Final = 32 * 1024 * 1024
#: Sessions in a row with no greeting before the run stops (the server is wedged).
WEDGED: Final = 3
# The first corpus entries (mostly seeds) are never dropped.
_KEPT_FIRST: Final = 20
FindingKind = Literal["crash", "hang", "violation"]


class TargetUnreachable(OSError):
    """The first connection to the target failed: there is nothing to fuzz."""


@final
@dataclass(frozen=True, slots=True)
class Finding:
    """Something the server did wrong, and where it is saved.

    Attributes:
        kind: ``"crash"``, ``"hang"`` or ``"violation"``.
        summary: one line saying what happened.
        session: the number of the session (1-based) that showed it.
        sessions_saved: how many sessions the saved transcript holds.
        path: the saved transcript, or ``None`` when nothing was saved.
    """

    kind: FindingKind
    summary: str
    session: int
    sessions_saved: int
    path: Path | None


@dataclass
class FuzzReport:
    """What a run sent and found (see :meth:`describe`).

    Attributes:
        target: ``host:port`` or the connect callable's description.
        seed: the random seed.
        sessions: sessions run.
        commands: writes made (steps, and each session's QUIT).
        bytes_sent: bytes written.
        seconds: time taken.
        states: the engine states reached.
        pairs: distinct ``(state, reply code)`` pairs seen.
        transitions: distinct ``(state, verb, reply code)`` transitions seen.
        corpus: sessions in the corpus at the end.
        closed_without_421: sessions the server closed while a reply was due,
            without a 421 first.
        refusals: connections refused once and accepted when asked again
            (counted against the session bound).
        findings: what was found, in order.
        stopped: why the run ended.
        origins: sessions by origin: ``seed``, ``valid`` (generated from the
            grammar) and ``mutant``.
        kinds: steps asked for, by kind (``line``, ``group``, ``raw``,
            ``content``; ``tail`` for those whose reply count is unknown).
    """

    target: str
    seed: int
    sessions: int = 0
    commands: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0
    states: set[State] = field(default_factory=set)
    pairs: int = 0
    transitions: int = 0
    corpus: int = 0
    closed_without_421: int = 0
    refusals: int = 0
    findings: list[Finding] = field(default_factory=list)
    stopped: str = ""
    origins: collections.Counter[str] = field(default_factory=collections.Counter)
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)

    def describe(self) -> list[str]:
        """The report as lines of plain text (no findings' details)."""
        states = ", ".join(sorted(s.name for s in self.states)) or "none"
        return [
            f"target {self.target}, seed {self.seed}: {self.sessions} sessions in "
            f"{self.seconds:.1f} s ({self.stopped})",
            f"sessions: {_counts(self.origins, ('seed', 'valid', 'mutant'))}",
            f"steps: {_counts(self.kinds, ('line', 'group', 'raw', 'content', 'tail'))}; "
            f"sent {self.commands} writes (steps and closing QUITs), {self.bytes_sent} bytes",
            f"reached {len(self.states)} engine states ({states}), {self.pairs} "
            f"(state, reply code) pairs, {self.transitions} (state, command, reply code) "
            f"transitions; corpus {self.corpus} sessions",
            f"sessions closed by the server with a reply due and no 421: "
            f"{self.closed_without_421}; connections refused once, then accepted: "
            f"{self.refusals}",
            f"findings: {len(self.findings)}",
        ]


@dataclass
class _Entry:
    """A corpus session and where it first stood in each state."""

    steps: tuple[Step, ...]
    reached: dict[tuple[State, int], int]
    size: int


class Fuzzer:
    """Fuzz one SMTP server with generated sessions; bounded in sessions and time.

    Args:
        target: a :class:`~smtpclient.fuzz.Target` (loopback unless it allows
            remote), or a callable that opens a connection given a timeout in
            seconds (yours: it is not checked for loopback).
        target_name: how the target is named in the report and the files
            (default: the target's ``host:port``).
        seed: the random seed (same seed, same server: the same sessions).
        max_sessions: stop after this many sessions (``None``: no limit).
        max_seconds: stop after about this many seconds (``None``: no limit;
            one of the two bounds is required).
        stage_timeout: seconds a due reply may take before it is a hang.
        out_dir: where findings are saved (created when the first one is).
        recipients: RCPT addresses to use; by default ``postmaster@`` the
            domain the server names in its greeting, and ``fuzz@example.org``.
        max_findings: stop after this many findings.
        on_finding: called with each finding as it is saved.
        on_session: called after each session with its number, its origin
            (``"seed"``, ``"valid"`` or ``"mutant"``), its result and how many
            coverage keys it reached first.

    Raises:
        ValueError: no bound was given, or a bound is not positive.
    """

    def __init__(
        self,
        target: Target | Connect,
        *,
        target_name: str | None = None,
        seed: int = 0,
        max_sessions: int | None = None,
        max_seconds: float | None = 60.0,
        stage_timeout: float = 5.0,
        out_dir: str | Path = "fuzz-findings",
        recipients: Sequence[str] = (),
        max_findings: int = 20,
        on_finding: Callable[[Finding], None] | None = None,
        on_session: Callable[[int, str, SessionResult, int], None] | None = None,
    ) -> None:
        if max_sessions is None and max_seconds is None:
            raise ValueError("give max_sessions or max_seconds: a fuzzing run must be bounded")
        if (max_sessions is not None and max_sessions < 1) or (
            max_seconds is not None and max_seconds <= 0
        ):
            raise ValueError("max_sessions and max_seconds must be positive")
        if isinstance(target, Target):
            self.runner = SessionRunner(target.connect, stage_timeout)
            self.target_name = target_name or target.address
        else:
            self.runner = SessionRunner(target, stage_timeout)
            self.target_name = target_name or str(getattr(target, "__name__", "target"))
        self.seed = seed
        self.max_sessions = max_sessions
        self.max_seconds = max_seconds
        self.stage_timeout = stage_timeout
        self.out_dir = Path(out_dir)
        self.recipients = tuple(recipients)
        self.max_findings = max_findings
        self.on_finding = on_finding
        self.on_session = on_session
        self.rng = random.Random(seed)  # noqa: S311 - reproducible by seed, not a secret
        self._coverage: set[Coverage] = set()
        self._corpus: list[_Entry] = []
        self._chosen: collections.Counter[tuple[State, int]] = collections.Counter()
        self._corpus_bytes = 0
        self._history_bytes = 0
        self._no_greeting = 0
        self._started = 0.0
        #: The report of the current (or last) run, kept up to date as it goes:
        #: what an interrupted run had done.
        self.report = FuzzReport(self.target_name, seed)
        self._history: collections.deque[tuple[int, SessionResult]] = collections.deque(
            maxlen=HISTORY
        )
        self._signatures: set[str] = set()

    # -- the loop ----------------------------------------------------------------------

    def interrupted(self) -> FuzzReport:
        """The report of a run that an exception (``KeyboardInterrupt``) cut short."""
        report = self.report
        report.seconds = time.monotonic() - self._started if self._started else 0.0
        report.corpus = len(self._corpus)
        report.stopped = "interrupted"
        return report

    def run(self) -> FuzzReport:
        """Fuzz until a bound is reached, the server dies, or enough was found.

        Returns:
            The :class:`FuzzReport`; its ``findings`` list the saved files.

        Raises:
            TargetUnreachable: the first connection failed.
            OSError: a finding could not be saved.
        """
        start = time.monotonic()
        deadline = None if self.max_seconds is None else start + self.max_seconds
        report = self.report = FuzzReport(self.target_name, self.seed)
        self._started = start
        recipients = self.recipients or self._learn_recipients()
        generator = Generator(self.rng, recipients)
        queue = [steps for _, steps in seed_sessions(recipients[0])]
        queue.reverse()
        report.stopped = "session limit reached"
        while True:
            if self.max_sessions is not None and (
                report.sessions + report.refusals >= self.max_sessions
            ):
                break
            if deadline is not None and time.monotonic() >= deadline:
                report.stopped = "time limit reached"
                break
            if len(report.findings) >= self.max_findings:
                report.stopped = "finding limit reached"
                break
            if queue:
                origin, steps = "seed", queue.pop()
            else:
                origin, steps = self._next(generator)
            report.origins[origin] += 1
            report.kinds.update(step.kind if not step.tail else "tail" for step in steps)
            result = self.runner.run(steps)
            if result.refused:
                if report.sessions == 0:
                    raise TargetUnreachable(
                        f"cannot connect to {self.target_name}: {result.refused_error}"
                    )
                if self._crash(report, result.refused_error):
                    report.stopped = "the server stopped accepting connections"
                    break
                report.refusals += 1  # refused once, then accepted again: not a crash
                continue
            report.sessions += 1
            number = report.sessions
            self._remember(number, result)
            new = self._learn(report, result)
            if self.on_session is not None:
                self.on_session(number, origin, result, new)
            if result.finding is not None:
                self._found(report, number, result)
            self._no_greeting = self._no_greeting + 1 if result.finding_step == -1 else 0
            if self._no_greeting >= WEDGED:
                report.stopped = f"the server did not greet {WEDGED} sessions in a row"
                break
        if not report.stopped.startswith("the server") and report.sessions:
            self._final_check(report)
        report.seconds = time.monotonic() - start
        report.corpus = len(self._corpus)
        return report

    def _learn_recipients(self) -> tuple[str, ...]:
        """``postmaster@`` the greeting's domain (mail to it must be taken), and a stranger."""
        result = self.runner.run(())
        if result.refused:
            raise TargetUnreachable(f"cannot connect to {self.target_name}: {result.refused_error}")
        # The greeting's first word is the server's name (RFC 5321 §4.3.1), read off
        # the engine's Greeting: a multiline or split greeting parses the same.
        words = result.greeting[0].split() if result.greeting else []
        domain = words[0].decode("ascii", "replace") if words else ""
        found = [f"postmaster@{domain}"] if domain and "." in domain else ["postmaster"]
        return (*found, "fuzz@example.org")

    def _next(self, generator: Generator) -> tuple[str, tuple[Step, ...]]:
        rng = self.rng
        if not self._corpus or rng.random() < 0.1:
            return "valid", generator.valid()
        # AFLNet's state selection: the state chosen least often so far, among
        # those the corpus reaches, then a session that reaches it.
        pairs = {pair for entry in self._corpus for pair in entry.reached}
        least = min(self._chosen[pair] for pair in pairs)
        pair = rng.choice(
            sorted((p for p in pairs if self._chosen[p] == least), key=lambda p: (p[0].name, p[1]))
        )
        self._chosen[pair] += 1
        entry = rng.choice([e for e in self._corpus if pair in e.reached])
        other = rng.choice(self._corpus).steps
        return "mutant", generator.mutate(entry.steps, other, start=entry.reached[pair])

    def _remember(self, number: int, result: SessionResult) -> None:
        """Keep the session for a crash's or hang's transcript, within the bounds."""
        history = self._history
        if len(history) == history.maxlen:
            self._history_bytes -= _size(history[0][1])
        history.append((number, result))
        self._history_bytes += _size(result)
        while len(history) > 1 and self._history_bytes > HISTORY_BYTES:
            self._history_bytes -= _size(history.popleft()[1])

    def _learn(self, report: FuzzReport, result: SessionResult) -> int:
        """Count the session and keep it if it reached something new; returns how much."""
        report.commands += result.commands
        report.bytes_sent += result.bytes_sent
        report.closed_without_421 += result.closed_without_421
        report.states |= result.states
        new = result.coverage - self._coverage
        if not new:
            return 0
        self._coverage |= new
        report.pairs = sum(1 for key in self._coverage if key[0] == "state")
        report.transitions = len(self._coverage) - report.pairs
        size = sum(len(step.data) for step in result.steps)
        self._corpus.append(_Entry(result.steps, dict(result.first_reached), size))
        self._corpus_bytes += size
        while len(self._corpus) > _KEPT_FIRST + 1 and (
            len(self._corpus) > MAX_CORPUS or self._corpus_bytes > CORPUS_BYTES
        ):
            # The oldest mutant goes; the first entries (mostly seeds) stay.
            self._corpus_bytes -= self._corpus.pop(_KEPT_FIRST).size
        return len(new)

    # -- findings ----------------------------------------------------------------------

    def _found(self, report: FuzzReport, number: int, result: SessionResult) -> None:
        assert result.finding is not None
        kind, summary = result.finding
        signature = f"{kind}:{_signature(summary)}"
        if signature in self._signatures:
            return
        self._signatures.add(signature)
        sessions: list[tuple[int, SessionResult]] = [(number, result)]
        if kind == "violation":
            again = self.runner.run(result.steps)
            if again.finding is None or again.finding[0] != "violation":
                sessions = list(self._history)
        else:
            sessions = list(self._history)
        self._save(report, kind, summary, number, sessions)

    def _crash(self, report: FuzzReport, error: str) -> bool:
        """After a refused connection: ask again, and save a crash if it is refused still."""
        if not self.runner.refuses_connections():
            return False
        number = report.sessions
        summary = f"the server stopped accepting connections after session {number} ({error})"
        self._save(report, "crash", summary, number, list(self._history))
        return True

    def _final_check(self, report: FuzzReport) -> None:
        result = self.runner.run(())
        if result.refused and self._crash(report, result.refused_error):
            report.stopped += "; then the server stopped accepting connections"

    def _save(
        self,
        report: FuzzReport,
        kind: FindingKind,
        summary: str,
        number: int,
        sessions: list[tuple[int, SessionResult]],
    ) -> None:
        saved = [SavedSession(n, r.steps, tuple(r.records)) for n, r in sessions]
        headers = [
            ("generator", GENERATOR),
            ("target", self.target_name),
            ("seed", str(self.seed)),
            ("stage-timeout", f"{self.stage_timeout:g}"),
            ("finding", kind),
            ("summary", summary.replace("\n", " ")),
            ("sessions", str(len(saved))),
        ]
        text = dump_sessions(headers, saved)
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{kind}-{number}-{digest}.txt"
        path.write_text(text, encoding="utf-8")
        finding = Finding(kind, summary, number, len(saved), path)
        report.findings.append(finding)
        log.info("%s after session %d: %s (saved as %s)", kind, number, summary, path)
        if self.on_finding is not None:
            self.on_finding(finding)


def _counts(counter: collections.Counter[str], names: tuple[str, ...]) -> str:
    return ", ".join(f"{counter[name]} {name}" for name in names)


def _size(result: SessionResult) -> int:
    return sum(len(r.data) for r in result.records)


def _signature(summary: str) -> str:
    """A finding's summary without the parts that vary from one instance to the next."""
    return re.sub(r"b'[^']*'|b\"[^\"]*\"|[0-9]+(\.[0-9]+)? s\b|session [0-9]+", "#", summary)
