"""Replay a saved finding: run its sessions again and say whether the problem recurs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ._record import load_sessions
from ._runner import Connect, SessionRunner
from ._target import Target

__all__ = ["ReplayResult", "replay"]


@dataclass
class ReplayResult:
    """What a replay saw.

    Attributes:
        expected: the kind of finding the file records (``None`` if it says none).
        findings: ``(kind, summary, session)`` for each problem seen, in order.
        sessions: sessions run.
        target: where they ran.
    """

    expected: str | None
    target: str
    sessions: int = 0
    findings: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def reproduced(self) -> bool:
        """True if a finding of the recorded kind (any kind, if none is recorded) recurred."""
        return any(self.expected in (None, kind) for kind, _, _ in self.findings)


def replay(
    path: str | Path,
    *,
    target: Target | None = None,
    connect: Connect | None = None,
    stage_timeout: float | None = None,
    allow_remote: bool = False,
) -> ReplayResult:
    """Run the sessions saved in ``path`` again, in order, checking the server after each.

    Args:
        path: a finding's transcript (any ``smtp-transcript/1`` file will do).
        target: where to replay; by default the file's ``target`` header.
        connect: a connect callable instead of a target (not checked for loopback).
        stage_timeout: seconds a due reply may take; by default the file's
            ``stage-timeout`` header, else 5.
        allow_remote: allow a ``target`` header that is not on loopback.

    Returns:
        A :class:`ReplayResult`; ``reproduced`` says if the finding recurred.
        A crash recurs when a connection is refused after a session.

    Raises:
        smtp_core.TranscriptError: the file is not a transcript.
        ValueError: no target is given and the file names none;
            :class:`~smtpclient.fuzz.RemoteTargetError` for a remote one.
        OSError: the file cannot be read, or the first connection fails.
    """
    saved = load_sessions(Path(path).read_text(encoding="utf-8"))
    headers = saved.headers
    if connect is None:
        if target is None:
            address = headers.get("target")
            if address is None:
                raise ValueError(f"{path} names no target: give one")
            target = Target.parse(address, allow_remote=allow_remote)
        connect = target.connect
        name = target.address
    else:
        name = headers.get("target", "the given connection")
    seconds = stage_timeout or float(headers.get("stage-timeout", "5") or 5)
    runner = SessionRunner(connect, seconds)
    result = ReplayResult(headers.get("finding"), name)
    for session in saved.sessions:
        run = runner.run(session.steps)
        if run.refused:
            if result.sessions == 0:
                raise OSError(f"cannot connect to {name}: {run.refused_error}")
            result.findings.append(
                ("crash", f"connection refused: {run.refused_error}", session.number)
            )
            return result
        result.sessions += 1
        if run.finding is not None:
            result.findings.append((run.finding[0], run.finding[1], session.number))
        if runner.refuses_connections():
            result.findings.append(
                (
                    "crash",
                    f"the server stopped accepting connections after session {session.number}",
                    session.number,
                )
            )
            return result
    return result
