"""Every face against every hostile server (GitHub issue 11): the outcome, and the wire.

Parametrised over (case x face): the cases are ``tests/hostile_cases.py``,
the faces ``tests/hostile_faces.py``, the server ``tests/hostile_kit.py``.
For each, the face must report the case's documented outcome, and:

* the connection is closed when the face returns (the server sees the close);
* no thread and no file descriptor is left behind (sets compared, not counts;
  an unclosed socket's ResourceWarning fails the test through
  ``filterwarnings = error``);
* nothing goes in the clear that must not: credentials before TLS (except
  where a face imitates smtplib, which sends them on purpose), MAIL when TLS
  is required;
* no command out of step: each line the script expects is the one the client
  sent (or QUIT, a client giving up politely), and after the script only the
  commands the case allows (after a 421, none);
* no success that did not happen: a delivered message is compared, octet for
  octet after unstuffing, with what the client was asked to send, and DATA
  content never carries a bare CR or LF or an unstuffed dot.

``SMTPCLIENT_HOSTILE_FACES`` (comma-separated face or group names, e.g.
``engine-blocking,smtplib,aio``) runs only those faces; unset, all of them.
CI may trim the faces on the oldest Python with it.  The faces:
``engine-blocking``, ``engine-asyncio``, ``engine-trio``,
``engine-anyio-asyncio``, ``engine-anyio-trio`` (group ``engine``),
``smtplib``, ``client_SMTP``, ``aio-asyncio``, ``aio-trio`` (group ``aio``),
``cli``.
"""

from __future__ import annotations

import gc
import os
import re
import threading
import time

import pytest

from tests.hostile_cases import CASES, SECRETS, Case
from tests.hostile_faces import FACES, Face, expected_content
from tests.hostile_kit import Certificates, HostileServer, data_wire_problems, unstuff

_WANTED = {name.strip() for name in os.environ.get("SMTPCLIENT_HOSTILE_FACES", "").split(",")}
_WANTED.discard("")
SELECTED = [f for f in FACES if not _WANTED or f.name in _WANTED or f.group in _WANTED]

PARAMS = [
    pytest.param(case, face, id=f"{case.name}[{face.name}]")
    for case in CASES
    for face in SELECTED
    if face.supports(case.plan)
]

#: Longest any face may take for one case: every timeout a case sets is far below.
PATIENCE = 8.0


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """The trusted and untrusted CAs and their certificates, for every case."""
    return Certificates(str(tmp_path_factory.mktemp("hostile") / "ca.pem"))


def _open_fds() -> set[int]:
    """This process's open file descriptors (Linux); empty where /proc is missing."""
    try:
        return {int(fd) for fd in os.listdir("/proc/self/fd")}
    except FileNotFoundError:
        return set()


def _settled(before: set[threading.Thread], fds: set[int]) -> tuple[set[str], set[int]]:
    """Threads and descriptors that are new since ``before``/``fds``, after a grace period.

    A thread that is ending (or a socket a finaliser closes) gets a moment;
    what is still there after it is a leak.
    """
    deadline = time.monotonic() + 2.0
    while True:
        threads = {t.name for t in set(threading.enumerate()) - before if t.is_alive()}
        # A descriptor number may be closed and reused within the test: only
        # those not open before count.
        new_fds = _open_fds() - fds
        if (not threads and not new_fds) or time.monotonic() > deadline:
            return threads, new_fds
        # Something is still open: let the collector close what nothing
        # references any more (an unclosed socket then fails the test with its
        # ResourceWarning), and look again.  Only then: gc costs ~20 ms a call.
        gc.collect()
        time.sleep(0.02)


@pytest.mark.parametrize(("case", "face"), PARAMS)
def test_hostile(case: Case, face: Face, certificates: Certificates) -> None:
    threads_before = set(threading.enumerate())
    fds_before = _open_fds()
    plan = case.plan
    implicit = case.implicit_cert if plan.tls == "implicit" else None
    with HostileServer(case.script, certificates, implicit_tls=implicit) as server:
        started = time.monotonic()
        outcome = face.run(plan, server.port, certificates)
        elapsed = time.monotonic() - started
        client_closed = server.wait(timeout=5.0)
    threads, fds = _settled(threads_before, fds_before)
    expected = case.expected(face)
    said = f"{face.name} said {outcome}"

    # The face kept its contract and reported the documented outcome.
    assert outcome.kind != "leak", f"an undocumented exception escaped: {outcome.detail}"
    assert outcome.kind in expected.kinds, f"expected {expected}; {said}"
    if outcome.kind == "refused" and expected.code is not None:
        assert outcome.code == expected.code, said
    if outcome.kind == "refused" and expected.command is not None and face.says_command:
        # A face whose exception names no command (smtplib's bare
        # SMTPResponseException) reports None, and there is nothing to compare.
        assert outcome.command in (expected.command, None), said
    if outcome.limit is not None:
        # StageTimeout.seconds is the limit that was reached, not what was left of it.
        assert outcome.limit == plan.timeout, said
    if outcome.status is not None and outcome.code == 421:
        # RFC 5321 §3.8: whatever it answers, the server is closing the
        # channel: the CLI's "connection" status (3), never "refused" (4, 5).
        assert outcome.status == 3, said
    if outcome.kind == "delivered":
        _check_delivery(case, server, outcome.accepted, outcome.refused, expected)

    # Nothing hangs, nothing is left behind.
    assert elapsed < PATIENCE, f"{face.name} took {elapsed:.1f} s"
    assert client_closed, f"{face.name} returned with the connection still open"
    assert not server.endless_capped, "the client read an endless reply to the end"
    assert not threads, f"threads left behind: {threads}"
    assert not fds, f"file descriptors left open: {fds}"

    # Nothing in the clear that must not be; nothing out of step.
    clear = server.clear
    if plan.username is not None and face.group not in case.clear_auth:
        for secret in SECRETS:
            assert secret not in clear, f"credentials in the clear: {clear!r}"
        assert not re.search(rb"(?im)^auth ", clear), f"AUTH in the clear: {clear!r}"
    if plan.tls in ("required", "implicit"):
        assert b"mail from" not in clear.lower(), f"MAIL in the clear: {clear!r}"
    for pattern in case.forbidden_in_clear:
        assert pattern.lower() not in clear.lower(), f"{pattern!r} in the clear: {clear!r}"
    for pattern in case.forbidden:
        assert pattern not in server.everything, f"{pattern!r} went on the wire"
    out_of_step = [(e, got) for e, got in server.deviations if not got.upper().startswith(b"QUIT")]
    assert not out_of_step, f"commands out of step (expected, sent): {out_of_step}"
    allowed = tuple(p.upper() for p in case.allowed_tail(face))
    for line in server.tail:
        assert line.upper().startswith(allowed) if allowed else False, (
            f"{line!r} after the script (allowed: {allowed})"
        )


def _check_delivery(
    case: Case,
    server: HostileServer,
    accepted: tuple[str, ...],
    refused: tuple[tuple[str, int], ...],
    expected: object,
) -> None:
    """A reported delivery happened: the server has the message, as it was given."""
    from tests.hostile_cases import Expect

    assert isinstance(expected, Expect)
    if expected.accepted is not None:
        assert accepted == expected.accepted
    if expected.refused is not None:
        assert set(refused) == set(expected.refused)
    assert server.finished, "delivered, but the server never got to the end of its script"
    want = expected_content(case.plan.message)
    if case.plan.bdat:
        assert b"".join(server.chunks) == want
        return
    assert server.messages, "delivered, but the server received no message"
    wire = server.messages[-1]
    assert data_wire_problems(wire) == []
    assert unstuff(wire) == want
