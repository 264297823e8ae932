"""The server-fuzzing kit (smtpclient.fuzz, ``smtpclient fuzz``) has teeth.

Planted bugs in a small scripted SMTP server on loopback (it dies on a RCPT
line over 1,000 octets; it answers 250 to DATA; it stops answering VRFY inside
a transaction) must each be found within a few seconds with a fixed seed, and
the saved transcript must reproduce the finding with one command.  The same
server without a bug, and aiosmtpd on its seeds, give nothing.  Then unit
tests: the generator, the transcript format, the checks, the loopback rule
and the command line's usage errors.
"""

from __future__ import annotations

import contextlib
import io
import random
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtp_core import Record, State, TranscriptError
from smtpclient._cli import run
from smtpclient.fuzz import (
    MAX_STEPS,
    SEEDS,
    Fuzzer,
    Generator,
    RemoteTargetError,
    SavedSession,
    SessionResult,
    SessionRunner,
    Step,
    Target,
    check_reply,
    content,
    dump_sessions,
    line,
    load_sessions,
    normalize,
    raw,
    replay,
    seed_sessions,
)
from tests.servers import AiosmtpdServer

STAGE = 0.5  # seconds: the planted hang must be seen quickly


# -- a scripted server with one planted bug --------------------------------------------------


class PlantedServer:
    """A small, correct SMTP server on loopback, but for one planted ``bug``.

    ``"crash"``: a RCPT line over 1,000 octets (CRLF included) kills it: the
    listening socket and the connection close, as when the process dies.
    ``"data250"``: DATA is answered 250 instead of 354 (RFC 5321 §4.3.2).
    ``"hang"``: VRFY inside a transaction is never answered.
    ``None``: no bug.
    """

    def __init__(
        self, bug: str | None, port: int = 0, greeting: bytes = b"220 planted.test ESMTP\r\n"
    ) -> None:
        self.bug = bug
        self.greeting = greeting
        self.listener = socket.create_server(("127.0.0.1", port))
        self.port: int = self.listener.getsockname()[1]
        self.dead = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.dead.set()
        # shutdown() first: a bare close() leaves the socket listening until the
        # accept() blocked on it in the other thread returns, one connection later
        # (a process that dies loses its listener at once).
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()

    def _accept(self) -> None:
        while not self.dead.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                self._session(conn)
            except OSError:
                return

    def _session(self, conn: socket.socket) -> None:
        buffer = b""
        tx = rcpts = False

        def lines() -> Iterator[bytes]:
            nonlocal buffer
            while True:
                end = buffer.find(b"\r\n")
                if end >= 0:
                    got, buffer = buffer[:end], buffer[end + 2 :]
                    yield got
                    continue
                data = conn.recv(65536)
                if not data or len(buffer) > 200_000:
                    return
                buffer += data

        conn.sendall(self.greeting)
        reader = lines()
        for text in reader:
            verb = text.split(b" ", 1)[0].upper()
            reply = b"500 5.5.2 unrecognised command"
            if verb == b"EHLO":
                tx = rcpts = False
                reply = b"250-planted.test\r\n250-PIPELINING\r\n250-AUTH LOGIN\r\n250 8BITMIME"
            elif verb == b"AUTH" and tx:
                reply = b"503 5.5.1 not in a mail transaction"
            elif verb == b"AUTH" and text.upper() == b"AUTH LOGIN":
                # RFC 4954 §4: any line is a response, whatever its first word.
                conn.sendall(b"334 VXNlcm5hbWU6\r\n")
                next(reader, None)
                conn.sendall(b"334 UGFzc3dvcmQ6\r\n")
                next(reader, None)
                reply = b"535 5.7.8 authentication failed"
            elif verb == b"HELO":
                tx = rcpts = False
                reply = b"250 planted.test"
            elif verb == b"MAIL":
                reply = b"503 5.5.1 nested MAIL" if tx else b"250 2.1.0 ok"
                tx = True
            elif verb == b"RCPT":
                if self.bug == "crash" and len(text) + 2 > 1000:
                    self.close()  # the whole server dies
                    return
                reply = b"250 2.1.5 ok" if tx else b"503 5.5.1 MAIL first"
                rcpts = rcpts or tx
            elif verb == b"DATA":
                if self.bug == "data250":
                    reply = b"250 2.0.0 fine"
                elif not rcpts:
                    reply = b"503 5.5.1 RCPT first"
                else:
                    conn.sendall(b"354 go ahead\r\n")
                    for body in reader:
                        if body == b".":
                            break
                    tx = rcpts = False
                    reply = b"250 2.0.0 queued"
            elif verb == b"VRFY":
                if self.bug == "hang" and tx:
                    for _ in reader:  # never answer again
                        pass
                    return
                reply = b"252 2.5.2 cannot verify"
            elif verb in (b"RSET", b"NOOP"):
                tx = rcpts = tx and verb == b"NOOP"
                reply = b"250 2.0.0 ok"
            elif verb == b"QUIT":
                conn.sendall(b"221 2.0.0 bye\r\n")
                return
            conn.sendall(reply + b"\r\n")


@pytest.fixture
def planted(request: pytest.FixtureRequest) -> Iterator[PlantedServer]:
    server = PlantedServer(request.param)
    yield server
    server.close()


def fuzz(server: PlantedServer, out: Path, sessions: int = 400, stage: float = STAGE) -> Fuzzer:
    # A longer stage timeout where no hang is planted: a loaded machine must
    # not turn a slow reply into a hang that changes the course of the run.
    return Fuzzer(
        Target("127.0.0.1", server.port),
        seed=1,
        max_sessions=sessions,
        max_seconds=20,
        stage_timeout=stage,
        out_dir=out,
        max_findings=5,
    )


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


# -- planted bugs: found, saved, replayed -------------------------------------------------------


@pytest.mark.parametrize("planted", ["crash"], indirect=True)
def test_a_server_that_dies_on_a_long_rcpt_line_is_found_and_replayed(
    planted: PlantedServer, tmp_path: Path
) -> None:
    report = fuzz(planted, tmp_path, stage=3.0).run()
    crashes = [f for f in report.findings if f.kind == "crash"]
    assert crashes, (report.describe(), report.findings)
    assert report.stopped == "the server stopped accepting connections", report.findings
    path = crashes[0].path
    assert path is not None
    text = path.read_text()
    assert "# finding: crash" in text
    lines = [
        text_line
        for session in load_sessions(text).sessions
        for step in session.steps
        for text_line in step.wire.split(b"\r\n")
    ]
    assert any(len(x) + 2 > 1000 and x[:4].upper() == b"RCPT" for x in lines)
    # The same server again, on the same port: one command reproduces the crash.
    again = PlantedServer("crash", planted.port)
    try:
        code, out, _ = cli("fuzz", "--replay", str(path))
        assert code == 1, out
        assert "reproduced: crash" in out
        assert again.dead.is_set()
    finally:
        again.close()


@pytest.mark.parametrize("planted", ["data250"], indirect=True)
def test_a_250_reply_to_data_is_a_violation_saved_as_one_session(
    planted: PlantedServer, tmp_path: Path
) -> None:
    report = fuzz(planted, tmp_path, sessions=20, stage=3.0).run()
    violations = [f for f in report.findings if f.kind == "violation"]
    assert violations, report.describe()
    finding = violations[0]
    assert "reply to DATA" in finding.summary
    assert finding.sessions_saved == 1
    assert finding.path is not None
    code, out, _ = cli("fuzz", "--replay", str(finding.path))
    assert code == 1, out
    assert "250 reply to DATA" in out
    assert replay(finding.path).reproduced


@pytest.mark.parametrize("planted", ["hang"], indirect=True)
def test_a_server_that_stops_answering_is_a_hang(planted: PlantedServer, tmp_path: Path) -> None:
    report = fuzz(planted, tmp_path, sessions=30).run()
    hangs = [f for f in report.findings if f.kind == "hang"]
    assert hangs, report.describe()
    assert "no reply to VRFY" in hangs[0].summary
    assert hangs[0].path is not None
    code, out, _ = cli("fuzz", "--replay", str(hangs[0].path), "--stage-timeout", str(STAGE))
    assert code == 1, out


@pytest.mark.parametrize("planted", [None], indirect=True)
def test_a_correct_server_gives_nothing_and_exit_0(planted: PlantedServer, tmp_path: Path) -> None:
    code, out, err = cli(
        "fuzz",
        "-s",
        f"127.0.0.1:{planted.port}",
        "--sessions",
        "150",
        "--seconds",
        "8",
        "--stage-timeout",
        "2",
        "--out",
        str(tmp_path),
        "--seed",
        "3",
        "-v",
    )
    assert code == 0, out + err
    assert "findings: 0" in out
    assert (
        "session 1 (seed): EHLO MAIL RCPT DATA [content 34] -> 220 250 250 250 354 250 221" in out
    )
    assert not list(tmp_path.iterdir())


def test_aiosmtpd_passes_the_seeds(tmp_path: Path) -> None:
    with AiosmtpdServer() as server:
        target = Target(server.host, server.port)
        report = Fuzzer(target, max_sessions=len(SEEDS), stage_timeout=2, out_dir=tmp_path).run()
    assert report.findings == []
    assert report.sessions == len(SEEDS)
    assert {State.READY, State.MAIL, State.RCPT, State.DATA} <= report.states


@pytest.mark.parametrize("planted", [None], indirect=True)
def test_what_the_runner_records_replays_as_the_same_steps(planted: PlantedServer) -> None:
    runner = SessionRunner(Target("127.0.0.1", planted.port).connect, 2.0)
    gen = Generator(random.Random(11), ["a@planted.test"])
    special = (
        # DATA refused (no RCPT): the content is skipped, and must still replay.
        (line("EHLO x"), line("MAIL FROM:<a@b.example>"), line("DATA"), content(b".\r\n")),
        # A LOGIN exchange: "NOOP" is a user name there, and 334 is its right answer.
        (line("EHLO x"), line("AUTH LOGIN"), line("NOOP"), line("NOOP"), line("NOOP")),
        (line("EHLO x"), raw(b"NOOP\r", None)),
    )
    sessions = [*special, *(gen.mutate(gen.valid(), gen.valid()) for _ in range(30))]
    for number, steps in enumerate(sessions, start=1):
        result = runner.run(steps)
        assert result.finding is None, (steps, result.records)
        text = dump_sessions([], [SavedSession(number, steps, tuple(result.records))])
        assert load_sessions(text).sessions[0].steps == steps
    assert ("transition", "AUTH", "<auth response>", "334") in runner.run(special[1]).coverage


def test_postfix_neither_crashes_nor_hangs_in_a_short_run(tmp_path: Path) -> None:
    from tests._postfix import PostfixServer, check_installation

    check_installation()  # fails, naming .ci/install_servers.sh, when postfix is missing
    workdir = Path(tempfile.mkdtemp(prefix="smtpclient-fuzz-kit-"))  # postfix must enter it
    try:
        with PostfixServer(workdir, main_cf={"smtpd_hard_error_limit": "100000"}) as server:
            report = Fuzzer(
                Target(*server.address),
                max_sessions=120,
                max_seconds=10,
                stage_timeout=5,
                out_dir=tmp_path,
            ).run()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    assert [f.kind for f in report.findings if f.kind != "violation"] == [], report.describe()
    assert {State.READY, State.MAIL, State.RCPT, State.DATA} <= report.states
    assert report.sessions == 120


# -- the generator ------------------------------------------------------------------------------


def test_the_server_name_is_read_off_a_multiline_greeting(tmp_path: Path) -> None:
    # The first session learns postmaster@<the greeting's first word>; a greeting
    # whose first line holds only the name once gave "planted.test\r\n220".
    server = PlantedServer(None, greeting=b"220-planted.test\r\n220 ESMTP ready\r\n")
    try:
        fuzzer = fuzz(server, tmp_path, sessions=1)
        assert fuzzer._learn_recipients() == ("postmaster@planted.test", "fuzz@example.org")
    finally:
        server.close()


def test_the_same_seed_makes_the_same_sessions() -> None:
    def sessions(seed: int) -> list[tuple[Step, ...]]:
        gen = Generator(random.Random(seed), ["a@example.org"])
        base = seed_sessions("a@example.org")
        return [gen.mutate(base[i % len(base)][1], base[0][1]) for i in range(50)]

    assert sessions(5) == sessions(5)
    assert sessions(5) != sessions(6)


@given(st.integers(0, 2**32), st.integers(1, 20))
def test_mutants_are_always_normalized(seed: int, rounds: int) -> None:
    gen = Generator(random.Random(seed), ["a@example.org", "postmaster"])
    steps = gen.valid()
    for _ in range(rounds):
        steps = gen.mutate(steps, gen.valid(), start=1)
        assert 1 <= len(steps) <= MAX_STEPS
        assert not any(step.tail for step in steps[:-1])
        assert normalize(steps) == steps


def test_mutators_reach_the_limits_and_the_hostile_bytes() -> None:
    gen = Generator(random.Random(0), ["a@example.org"])
    seen: set[int] = set()
    hostile: set[bytes] = set()
    base = seed_sessions("a@example.org")
    for i in range(3000):
        for step in gen.mutate(base[i % len(base)][1]):
            seen.update(len(x) + 2 for x in step.lines)
            hostile.update(b for b in (b"\0", b"\n.\n", b"\r") if b in step.data)
    assert {512, 1000, 1001, 2048} <= seen
    assert hostile == {b"\0", b"\n.\n", b"\r"}


# -- the transcript format ----------------------------------------------------------------------


_bytes_line = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
_steps = st.lists(
    st.one_of(
        st.builds(lambda b: Step("line", b), _bytes_line),
        st.builds(lambda b: Step("raw", b, None), st.binary(max_size=40)),
        st.builds(lambda b, n: Step("raw", b, n), st.binary(max_size=40), st.integers(0, 64)),
        st.builds(lambda b: Step("content", b + b"\r\n.\r\n"), st.binary(max_size=40)),
    ),
    max_size=6,
)


@given(st.lists(_steps, min_size=1, max_size=3))
def test_saved_sessions_load_back_to_the_same_steps(sessions: list[list[Step]]) -> None:
    saved = [
        SavedSession(number, tuple(steps), recorded(steps))
        for number, steps in enumerate(sessions, start=1)
    ]
    text = dump_sessions([("finding", "hang")], saved)
    loaded = load_sessions(text)
    assert loaded.headers["finding"] == "hang"
    assert [s.steps for s in loaded.sessions] == [tuple(s) for s in sessions]
    assert dump_sessions([("finding", "hang")], list(loaded.sessions)) == text


def recorded(steps: Sequence[Step]) -> tuple[Record, ...]:
    """What the runner records for ``steps`` if each draws a 250."""
    records: list[Record] = []
    for step in steps:
        kind = (
            f"raw {'?' if step.replies is None else step.replies}"
            if step.kind == "raw"
            else step.kind
        )
        records += [
            Record("#", f" step {kind}"),
            Record("C", step.wire),
            Record("S", b"250 ok\r\n"),
        ]
    return tuple(records)


def test_a_recording_made_elsewhere_replays_chunk_by_chunk() -> None:
    text = (
        "# format: smtp-transcript/1\n"
        "S: b'220 x\\r\\n'\n"
        "C: b'EHLO a\\r\\n'\n"
        "S: b'250-x\\r\\n250 SIZE\\r\\n'\n"
        "C: b'NOOP\\r\\nNOOP\\r\\n'\n"
        "S: b'250 ok\\r\\n'\n"
        "S: b'250 ok\\r\\n'\n"
    )
    (session,) = load_sessions(text).sessions
    assert session.steps == (Step("raw", b"EHLO a\r\n", 1), Step("raw", b"NOOP\r\nNOOP\r\n", 2))


@pytest.mark.parametrize(
    "comment", ["# step frob", "# step raw 65", "# step raw x", "# step content skipped 'str'"]
)
def test_malformed_step_comments_are_refused(comment: str) -> None:
    text = f"# format: smtp-transcript/1\n# session 1 of 1\n{comment}\nC: b'NOOP\\r\\n'\n"
    with pytest.raises(TranscriptError):
        load_sessions(text)


# -- the checks, the target rule, the command line -----------------------------------------------


@pytest.mark.parametrize(
    ("verb", "state", "code", "known", "bad"),
    [
        ("DATA", State.RCPT, 250, True, True),
        ("DATA", State.RCPT, 354, True, False),
        ("RCPT", State.READY, 250, True, True),
        ("RCPT", State.READY, 250, False, False),
        ("RCPT", State.MAIL, 250, True, False),
        ("MAIL", State.RCPT, 250, True, True),
        ("MAIL", State.READY, 250, True, False),
        ("NOOP", State.READY, 354, True, True),
        ("QUIT", State.READY, 334, False, True),
        ("AUTH", State.READY, 334, True, False),
        ("AUTH", State.MAIL, 334, True, True),
        ("AUTH", State.RCPT, 235, True, True),
        ("AUTH", State.RCPT, 503, True, False),
        ("AUTH", State.RCPT, 334, False, False),
        ("VRFY", State.READY, 500, True, False),
    ],
)
def test_the_reply_rules(verb: str, state: State, code: int, known: bool, bad: bool) -> None:
    assert (check_reply(verb, state, code, state_known=known) is not None) is bad


def test_only_loopback_unless_allowed() -> None:
    assert Target("127.0.0.1", 25).address == "127.0.0.1:25"
    assert Target.parse("[::1]:2525").address == "[::1]:2525"
    with pytest.raises(RemoteTargetError):
        Target("192.0.2.1", 25)
    assert Target("192.0.2.1", 25, allow_remote=True).address == "192.0.2.1:25"
    for bad in ("", "host:port", "[::1", "a:1:2:x"):
        with pytest.raises(ValueError, match="HOST"):
            Target.parse(bad)


@given(st.sampled_from(["127.0.0.1", "::1", "localhost", "127.1.2.3"]), st.integers(1, 65535))
def test_a_target_address_parses_back(host: str, port: int) -> None:
    target = Target.parse(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    assert Target.parse(target.address) == target
    assert (target.host, target.port) == (host, port)


def test_the_main_help_names_the_fuzz_mode() -> None:
    code, out, _ = cli("--help")
    assert code == 0
    assert "fuzz    fuzz a server you own" in out
    assert "smtpclient fuzz --replay" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fuzz"], "give the server"),
        (["fuzz", "-s", "192.0.2.1:25"], "not a loopback address"),
        (["fuzz", "-s", "127.0.0.1:25", "--seconds", "0"], "must be positive"),
        (["fuzz", "-s", "127.0.0.1:25", "--stage-timeout", "-1"], "must be positive"),
        (["fuzz", "--replay", "x.txt", "--sessions", "3"], "do not apply"),
        (["fuzz", "-s", "127.0.0.1:99999"], "port"),
        (["fuzz", "--bogus"], "unrecognized"),
        (["fuzz", "--replay", "/nonexistent/finding.txt"], "no such file"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str) -> None:
    code, _, err = cli(*argv)
    assert code == 2
    assert message in err


def test_a_file_that_is_not_a_transcript_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("hello\n")
    code, _, err = cli("fuzz", "--replay", str(path), "-s", "127.0.0.1:25")
    assert code == 2
    assert "not a header" in err


def test_an_unreachable_server_exits_3() -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    code, _, err = cli("fuzz", "-s", f"127.0.0.1:{port}", "--sessions", "1")
    assert code == 3
    assert "cannot connect" in err


def test_a_server_that_never_greets_ends_the_run(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:  # accepts, says nothing
        port = listener.getsockname()[1]

        def connect(timeout: float) -> socket.socket:
            return socket.create_connection(("127.0.0.1", port), timeout)

        report = Fuzzer(connect, max_sessions=50, stage_timeout=0.2, out_dir=tmp_path).run()
    assert report.stopped == "the server did not greet 3 sessions in a row"
    assert report.sessions == 3
    assert [f.kind for f in report.findings] == ["hang"]
    assert "no greeting within 0.2 s" in report.findings[0].summary
    assert report.target == "connect"


def test_a_run_must_be_bounded() -> None:
    target = Target("127.0.0.1", 25)
    with pytest.raises(ValueError, match="bounded"):
        Fuzzer(target, max_seconds=None)
    with pytest.raises(ValueError, match="positive"):
        Fuzzer(target, max_sessions=0)
    with pytest.raises(ValueError, match="positive"):
        SessionRunner(target.connect, 0)


@pytest.mark.parametrize(
    ("kind", "data", "replies", "error"),
    [
        ("bogus", b"", 1, ValueError),
        ("line", "NOOP", 1, TypeError),
        ("raw", b"", 65, ValueError),
        ("line", b"NOOP", 2, ValueError),
        ("group", b"NOOP\r\nVRFY a\rb", 1, ValueError),
    ],
)
def test_steps_refuse_bad_fields(kind: str, data: object, replies: int, error: type) -> None:
    with pytest.raises(error):
        Step(kind, data, replies)  # type: ignore[arg-type]


@pytest.mark.parametrize("planted", ["data250"], indirect=True)
def test_replay_takes_a_target_or_a_connect_callable(
    planted: PlantedServer, tmp_path: Path
) -> None:
    steps = (line("EHLO x"), line("MAIL FROM:<>"), line("DATA"))
    session = SavedSession(1, steps, recorded(steps))
    path = tmp_path / "no-target.txt"
    path.write_text(dump_sessions([("finding", "violation")], [session]))
    with pytest.raises(ValueError, match="names no target"):
        replay(path)
    assert replay(path, target=Target("127.0.0.1", planted.port)).reproduced
    result = replay(path, connect=Target("127.0.0.1", planted.port).connect, stage_timeout=2)
    assert result.reproduced
    assert [(kind, number) for kind, _, number in result.findings] == [("violation", 1)]
    assert "250 reply to DATA" in result.findings[0][1]


@pytest.mark.parametrize("planted", [None], indirect=True)
def test_an_interrupted_run_still_says_what_it_did(
    planted: PlantedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def stop_after_three(number: int, origin: str, result: SessionResult, new: int) -> None:
        if number == 3:
            raise KeyboardInterrupt

    fuzzer = Fuzzer(
        Target("127.0.0.1", planted.port),
        max_sessions=10,
        out_dir=tmp_path,
        on_session=stop_after_three,
    )
    with pytest.raises(KeyboardInterrupt):
        fuzzer.run()
    report = fuzzer.interrupted()
    assert (report.sessions, report.stopped) == (3, "interrupted")

    def interrupt(self: Fuzzer) -> None:
        self.report.sessions = 7
        raise KeyboardInterrupt

    monkeypatch.setattr(Fuzzer, "run", interrupt)
    code, out, err = cli("fuzz", "-s", f"127.0.0.1:{planted.port}", "--sessions", "10")
    assert code == 130
    assert "interrupted" in err
    assert "7 sessions in" in out


@pytest.mark.parametrize("planted", [None], indirect=True)
def test_one_refused_connection_is_not_a_crash(planted: PlantedServer, tmp_path: Path) -> None:
    calls = 0

    def connect(timeout: float) -> socket.socket:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise ConnectionRefusedError("refused once")
        return socket.create_connection(("127.0.0.1", planted.port), timeout)

    report = Fuzzer(connect, max_sessions=12, out_dir=tmp_path).run()
    assert (report.sessions, report.refusals, report.findings) == (11, 1, [])
    assert report.stopped == "session limit reached"
