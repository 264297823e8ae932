"""Fuzz an SMTP server you own: generated sessions, state feedback, replayable findings.

A library API and the ``smtpclient fuzz`` command, built on the engine's raw
mode.  The :class:`Fuzzer` drives a real server with sessions that are valid,
mutated (from built-in seeds and from the sessions that taught it something)
or hostile; the server's reply codes and the engine's state are the feedback
that steers it towards deeper states, after AFLNet.  It reports:

* **crashes**: the server refuses connections after a session;
* **hangs**: a due reply does not come within the stage timeout;
* **violations**: replies the engine rejects (bad grammar, a reply nothing
  asked for, bytes after STARTTLS's 220) and replies RFC 5321 rules out
  (a 2yz to DATA, to RCPT with no MAIL, to a second MAIL; a 3yz to MAIL, RCPT,
  RSET, EHLO, HELO, NOOP or QUIT; anything but an error to AUTH inside a mail
  transaction).

Each finding is saved as an ``smtp-transcript/1`` file that :func:`replay`
(or ``smtpclient fuzz --replay FILE``) runs again.  Runs are bounded by
sessions and time, reproducible by seed, and kept to loopback unless the
caller allows a remote target: fuzzing someone else's server is an attack.

Example::

    from smtpclient.fuzz import Fuzzer, Target

    report = Fuzzer(Target("127.0.0.1", 2525), max_seconds=30).run()
    print("\\n".join(report.describe()))
    for finding in report.findings:
        print(finding.kind, finding.summary, finding.path)
"""

from __future__ import annotations

from ._checks import check_reply
from ._fuzzer import HISTORY, MAX_CORPUS, Finding, Fuzzer, FuzzReport, TargetUnreachable
from ._mutate import MUTATORS, Generator
from ._record import Saved, SavedSession, dump_sessions, load_sessions
from ._replay import ReplayResult, replay
from ._runner import Connect, SessionResult, SessionRunner
from ._seeds import SEEDS, seed_sessions
from ._steps import MAX_SESSION_BYTES, MAX_STEPS, Step, content, group, line, normalize, raw
from ._target import RemoteTargetError, Target, is_loopback

__all__ = [
    "HISTORY",
    "MAX_CORPUS",
    "MAX_SESSION_BYTES",
    "MAX_STEPS",
    "MUTATORS",
    "SEEDS",
    "Connect",
    "Finding",
    "FuzzReport",
    "Fuzzer",
    "Generator",
    "RemoteTargetError",
    "ReplayResult",
    "Saved",
    "SavedSession",
    "SessionResult",
    "SessionRunner",
    "Step",
    "Target",
    "TargetUnreachable",
    "check_reply",
    "content",
    "dump_sessions",
    "group",
    "is_loopback",
    "line",
    "load_sessions",
    "normalize",
    "raw",
    "replay",
    "seed_sessions",
]
