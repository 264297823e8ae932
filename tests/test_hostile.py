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
``smtplib``, ``client_SMTP``, ``aio-asyncio``, ``aio-trio``, ``aio-send`` (group ``aio``),
``cli``.
"""

from __future__ import annotations

import gc
import os
import re
import socket
import threading
import time

import pytest

from tests.hostile_cases import CASES, SECRETS, Case, hello
from tests.hostile_faces import FACES, Face, expected_content
from tests.hostile_kit import (
    ENDLESS_CAP,
    Certificates,
    HostileServer,
    data_wire_problems,
    endless,
    expect,
    reset,
    send,
    starttls,
    unstuff,
)

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
    if outcome.kind == "refused" and face.says_command:
        assert outcome.command == expected.command, said
    if outcome.kind == "refused" and case.text is not None:
        assert case.text in outcome.text, said
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


# -- the kit itself: each check above can fail ------------------------------------------------
#
# A naive client on a raw socket does what no face may do, and the kit must see it.


def _naive(server: HostileServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.settimeout(5)
    return sock


def _read_until(sock: socket.socket, end: bytes) -> bytes:
    data = b""
    while not data.endswith(end):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_kit_records_credentials_sent_in_the_clear(certificates: Certificates) -> None:
    steps = [
        *hello((b"AUTH PLAIN",)),
        expect(b"AUTH PLAIN"),
        send(b"235 2.7.0 ok\r\n"),
    ]
    with HostileServer(steps, certificates) as server, _naive(server) as sock:
        _read_until(sock, b"\r\n")
        sock.sendall(b"EHLO naive.example\r\n")
        _read_until(sock, b"250 AUTH PLAIN\r\n")
        sock.sendall(b"AUTH PLAIN " + SECRETS[1] + b"\r\n")
        assert _read_until(sock, b"\r\n").startswith(b"235")
        sock.sendall(b"QUIT\r\n")
        _read_until(sock, b"\r\n")
    assert SECRETS[1] in server.clear
    assert server.encrypted == b""
    assert server.tail == [b"QUIT"]


def test_kit_sees_a_connection_left_open(certificates: Certificates) -> None:
    with HostileServer([send(b"220 hi\r\n")], certificates) as server:
        sock = _naive(server)
        _read_until(sock, b"\r\n")
        assert not server.wait(timeout=0.3)
        sock.close()
        assert server.wait(timeout=5)


def test_kit_records_a_command_out_of_step(certificates: Certificates) -> None:
    steps = [send(b"220 hi\r\n"), expect(b"MAIL FROM:"), send(b"250 ok\r\n")]
    with HostileServer(steps, certificates) as server:
        with _naive(server) as sock:
            _read_until(sock, b"\r\n")
            sock.sendall(b"RCPT TO:<a@example.org>\r\n")
        # Inside: leaving the server's block stops it, maybe before it read the line.
        assert server.wait(timeout=5)
    assert server.deviations == [(b"MAIL FROM:", b"RCPT TO:<a@example.org>")]
    assert not server.finished


def test_kit_refuses_bytes_sent_before_the_handshake(certificates: Certificates) -> None:
    steps = [send(b"220 hi\r\n"), expect(b"STARTTLS"), send(b"220 go\r\n"), starttls()]
    with HostileServer(steps, certificates) as server:
        with _naive(server) as sock:
            _read_until(sock, b"\r\n")
            sock.sendall(b"STARTTLS\r\nEHLO too.early\r\n")  # one packet: out of step
            # Stay until the server has answered: a close now could fail its 220.
            assert _read_until(sock, b"\r\n") == b"220 go\r\n"
        assert server.wait(timeout=5)  # inside: see test_kit_records_a_command_out_of_step
    assert server.deviations == [(b"<the TLS handshake>", b"EHLO too.early\r\n")]


def test_kit_stops_an_endless_reply_when_the_client_closes(certificates: Certificates) -> None:
    with HostileServer([endless(b"250-more\r\n")], certificates) as server:
        with _naive(server) as sock:
            assert sock.recv(4096).startswith(b"250-more")
        assert server.wait(timeout=5)
    assert 0 < server.endless_sent < ENDLESS_CAP
    assert not server.endless_capped


def test_kit_answers_and_records_the_tail(certificates: Certificates) -> None:
    with HostileServer([send(b"220 hi\r\n")], certificates) as server, _naive(server) as sock:
        _read_until(sock, b"\r\n")
        sock.sendall(b"NOOP\r\nMAIL FROM:<a@b>\r\nQUIT\r\n")
        replies = _read_until(sock, b"221 2.0.0 bye\r\n")
    assert replies == b"250 2.0.0 ok\r\n500 5.5.1 not in the script\r\n221 2.0.0 bye\r\n"
    assert server.tail == [b"NOOP", b"MAIL FROM:<a@b>", b"QUIT"]


def test_kit_resets(certificates: Certificates) -> None:
    with HostileServer([reset()], certificates) as server:
        # An RST, not a FIN (which would read b""): seen by recv, or already by
        # the connect when the RST overtakes it.
        with pytest.raises(ConnectionResetError), _naive(server) as sock:
            assert server.wait(timeout=5)
            sock.recv(1)


def test_kit_finds_what_could_end_data_early() -> None:
    assert data_wire_problems(b"a\r\n..b\r\n") == []
    assert data_wire_problems(b"a\n.\nb\r\n") == ["a bare LF"]
    assert data_wire_problems(b"a\r.\rb\r\n") == ["a bare CR"]
    assert data_wire_problems(b"a\r\n.b\r\n") == ["an unstuffed line starting with a dot: b'.b'"]
    assert unstuff(b"..a\r\nb\r\n") == b".a\r\nb\r\n"


def test_kit_calls_an_undocumented_exception_a_leak() -> None:
    from tests.hostile_faces import _engine_error

    assert _engine_error(KeyError("x")).kind == "leak"
    assert _engine_error(TimeoutError()).kind == "timeout"
    # smtplib's faces may raise OSError, but never the engine's own (a StageTimeout
    # is an OSError): that would be the engine leaking through the facade.
    from smtp_core import Stage, StageTimeout
    from tests.hostile_faces import _smtplib_error

    assert _smtplib_error(StageTimeout(Stage.MAIL, 1.0)).kind == "leak"
    assert _smtplib_error(TimeoutError()).kind != "leak"
