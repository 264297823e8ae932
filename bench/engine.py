"""The engine alone, no sockets: reply parsing, DATA encoding, encoder memory.

    python bench/engine.py            # the full run (a few minutes)
    python bench/engine.py --quick    # a smoke run (seconds)
    python bench/engine.py --profile-replies   # cProfile of the reply parsing

a. Replies parsed per second: ``smtp_core._replies.ReplyReader`` (and the whole
   ``Connection.next_event``, which also pairs each reply with its command and
   moves the state) vs smtpproto's ``SMTPClientProtocol.feed_bytes`` (which
   also runs its state machine), aiosmtplib's ``_read_response_from_buffer``
   (plus its ``parse_esmtp_extensions`` on the EHLO reply, as its ``ehlo()``
   does: the other two build their extension view there too) and smtplib's
   ``getreply`` loop (``readline`` + ``int(code)``) over a ``BytesIO``.
b. DATA encoding throughput on a message full of bare LFs and leading dots.
c. Peak memory (tracemalloc) while encoding, at two message sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import email
import email.policy
import io
import pstats
import smtplib
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import _common
from _common import MiB, fmt_int, ratio, table
from aiosmtplib.esmtp import parse_esmtp_extensions
from aiosmtplib.protocol import PERIOD_REGEX, SMTPProtocol, normalize_message_line_endings
from smtpproto.protocol import ClientState, SMTPClientProtocol

from smtp_core import NEED_DATA, Connection, DataEncoder, Ehlo, Mail, Rcpt
from smtp_core._replies import ReplyReader

# -- a. replies -----------------------------------------------------------------------

GREETING = b"220 mail.example.com ESMTP\r\n"
EHLO_REPLY = (
    b"250-mail.example.com Hello client.example.org [192.0.2.1]\r\n"
    b"250-SIZE 52428800\r\n"
    b"250-8BITMIME\r\n"
    b"250-PIPELINING\r\n"
    b"250-CHUNKING\r\n"
    b"250-SMTPUTF8\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-DSN\r\n"
    b"250-AUTH PLAIN LOGIN\r\n"
    b"250 STARTTLS\r\n"
)
SINGLE = b"250 2.1.5 Ok\r\n"
BURST_SIZE = 1000
SINGLES = 100

# name -> (buffers as they arrive in reads, replies in them, verb that drew them)
CASES: dict[str, tuple[list[bytes], int, str]] = {
    "EHLO reply, 10 lines, one read": ([EHLO_REPLY], 1, "EHLO"),
    f"{SINGLES} single-line 250s, one read each": ([SINGLE] * SINGLES, SINGLES, "RCPT"),
    f"burst of {BURST_SIZE:,} `250 2.1.5 Ok`, one read": (
        [SINGLE * BURST_SIZE],
        BURST_SIZE,
        "RCPT",
    ),
}


def _reader_run(buffers: list[bytes]) -> Callable[[ReplyReader], int]:
    def run(reader: ReplyReader) -> int:
        n = 0
        for data in buffers:
            reader.feed(data)
            while reader.next_reply() is not None:
                n += 1
        return n

    return run


_RCPTS = [Rcpt(f"r{i}@example.com") for i in range(BURST_SIZE)]
_MAIL = Mail("sender@example.com")


def _connection_setup(verb: str, replies: int) -> Callable[[], Connection]:
    """A connection waiting for ``replies`` replies (EHLO, or MAIL + RCPTs)."""

    def setup() -> Connection:
        conn = Connection()
        conn.receive_data(GREETING)
        conn.next_event()
        conn.send(Ehlo("bench.test"))
        if verb == "EHLO":
            return conn
        conn.receive_data(EHLO_REPLY)
        conn.next_event()
        conn.send_many([_MAIL, *_RCPTS[: replies - 1]])
        return conn

    return setup


def _connection_run(buffers: list[bytes], verb: str) -> Callable[[Connection], int]:
    # The connection parses the EHLO lines on first use; on the EHLO reply the
    # run reads one extension (as send() does for the next pipelined command),
    # so the parse is timed like the peers' extension parsing.
    def run(conn: Connection) -> int:
        n = 0
        for data in buffers:
            conn.receive_data(data)
            while conn.next_event() is not NEED_DATA:
                if verb == "EHLO":
                    conn.extensions.pipelining  # noqa: B018
                n += 1
        return n

    return run


def _smtpproto_setup() -> SMTPClientProtocol:
    proto = SMTPClientProtocol()
    proto._state = ClientState.ready
    return proto


def _smtpproto_run(buffers: list[bytes], verb: str) -> Callable[[SMTPClientProtocol], int]:
    # smtpproto sends one command at a time and feed_bytes() returns one
    # response per call, keeping the rest buffered: setting ``_command_sent``
    # is the cheapest way to have it expect the next reply (what its own
    # ``_send_command`` does, minus building the command line).
    def run(proto: SMTPClientProtocol) -> int:
        n = 0
        for data in buffers:
            proto._command_sent = verb
            response = proto.feed_bytes(data)
            while response is not None:
                n += 1
                proto._command_sent = verb
                response = proto.feed_bytes(b"")
        return n

    return run


_LOOP = asyncio.new_event_loop()


def _aiosmtplib_setup() -> SMTPProtocol:
    return SMTPProtocol(loop=_LOOP)


def _aiosmtplib_run(buffers: list[bytes], verb: str) -> Callable[[SMTPProtocol], int]:
    # On the EHLO reply, also what aiosmtplib's ``ehlo()`` does with it
    # (parse_esmtp_extensions), as our next_event and smtpproto build their
    # extension view there too.
    def run(proto: SMTPProtocol) -> int:
        n = 0
        for data in buffers:
            proto._buffer.extend(data)
            while (response := proto._read_response_from_buffer()) is not None:
                if verb == "EHLO":
                    parse_esmtp_extensions(response.message)
                n += 1
        return n

    return run


def _smtplib_run(stream: io.BytesIO) -> int:
    """``smtplib.SMTP.getreply`` minus the socket and the debug output."""
    maxline = smtplib._MAXLINE  # type: ignore[attr-defined]
    n = 0
    readline = stream.readline
    while True:
        resp = []
        while True:
            line = readline(maxline + 1)
            if not line:
                return n
            if len(line) > maxline:
                raise smtplib.SMTPResponseException(500, "Line too long.")
            resp.append(line[4:].strip(b" \t\r\n"))
            code = line[:3]
            try:
                errcode = int(code)
            except ValueError:
                errcode = -1
                break
            if line[3:4] != b"-":
                break
        _ = (errcode, b"\n".join(resp))  # what getreply returns
        n += 1


def bench_replies(args: argparse.Namespace) -> None:
    print("### a. Replies parsed per second\n")
    print(
        "Each parser gets a fresh parser object per call (made outside the timing) and the\n"
        "same bytes; the smtplib reference reads them from one `BytesIO` (its parsing does\n"
        "not depend on how the bytes arrived).  `mix` = 1 EHLO reply + "
        f"{SINGLES} single replies + 1 burst, from the times of the three rows.\n"
    )
    names = [
        "ours: ReplyReader (parse only)",
        "ours: Connection.next_event (parse + pair + state; + extensions on EHLO)",
        "smtpproto: SMTPClientProtocol.feed_bytes (parse + state)",
        "aiosmtplib: SMTPProtocol._read_response_from_buffer (+ extensions on EHLO)",
        "smtplib: getreply loop over BytesIO (reference)",
    ]
    per_case: dict[str, dict[str, float]] = {}
    for case, (buffers, replies, verb) in CASES.items():
        joined = b"".join(buffers)
        candidates = {
            names[0]: (_reader_run(buffers), ReplyReader),
            names[1]: (_connection_run(buffers, verb), _connection_setup(verb, replies)),
            names[2]: (_smtpproto_run(buffers, verb), _smtpproto_setup),
            names[3]: (_aiosmtplib_run(buffers, verb), _aiosmtplib_setup),
            names[4]: (_smtplib_run, lambda joined=joined: io.BytesIO(joined)),
        }
        for name, (run, setup) in candidates.items():
            got = run(setup())
            assert got == replies, (name, case, got)
        per_case[case] = _common.best_of(candidates, repeats=args.repeats, min_time=args.min_time)
    rows = []
    total_replies = sum(replies for _, replies, _ in CASES.values())
    proto_name = names[2]
    for case, (_, replies, _) in [*CASES.items(), ("mix", (None, total_replies, None))]:
        if case == "mix":
            times = {n: sum(per_case[c][n] for c in CASES) for n in names}
        else:
            times = per_case[case]
        for name in names:
            rate = replies / times[name]
            rows.append(
                [
                    case,
                    name,
                    fmt_int(rate),
                    f"{times[name] * 1e6 / replies:.2f}",
                    ratio(rate, replies / times[proto_name]),
                ]
            )
    table(["case", "parser", "replies/s", "µs/reply", "rate vs smtpproto"], rows)


# -- b. DATA encoding -----------------------------------------------------------------

CHUNK = 256 * 1024


def _chunks(data: bytes) -> Iterator[memoryview]:
    view = memoryview(data)
    return (view[i : i + CHUNK] for i in range(0, len(view), CHUNK))


def ours_chunked(data: bytes, sink: Callable[[bytes], object]) -> None:
    """What ``procedures._write_content`` does: 256 KiB chunks.

    The last chunk and the end marker go out in one write.
    """
    encoder = DataEncoder()
    held = b""
    for chunk in _chunks(data):
        if held:
            sink(held)
        held = encoder.encode(chunk)
    sink(held + encoder.end())


def ours_whole(data: bytes, sink: Callable[[bytes], object]) -> None:
    encoder = DataEncoder()
    sink(encoder.encode(data) + encoder.end())


def reference(data: bytes, sink: Callable[[bytes], object]) -> None:
    out = _common.reference_encode(data)
    sink(out + (b".\r\n" if out.endswith(b"\r\n") else b"\r\n.\r\n"))


def smtplib_bytes(data: bytes, sink: Callable[[bytes], object]) -> None:
    """``smtplib.SMTP.data(bytes)``: dot-stuffing only, bare CR/LF pass through."""
    q = smtplib._quote_periods(data)  # type: ignore[attr-defined]
    if q[-2:] != smtplib.bCRLF:
        q = q + smtplib.bCRLF
    q = q + b"." + smtplib.bCRLF
    sink(q)


def smtplib_str(text: str, sink: Callable[[bytes], object]) -> None:
    """``smtplib.SMTP.sendmail(str)``: ``_fix_eols`` + ``encode`` + ``data()``."""
    msg = smtplib._fix_eols(text).encode("ascii")  # type: ignore[attr-defined]
    smtplib_bytes(msg, sink)


def aiosmtplib_encode(data: bytes, sink: Callable[[bytes], object]) -> None:
    """``SMTPProtocol.execute_data_command``'s encoding."""
    message = normalize_message_line_endings(data)
    message = PERIOD_REGEX.sub(b"..", message)
    message += b".\r\n"
    sink(message)


def smtpproto_encode(message: email.message.EmailMessage, sink: Callable[[bytes], object]) -> None:
    """``SMTPClientProtocol.data``: ``as_bytes`` then one ``replace``.

    The email generator normalises line endings (``policy=SMTP``); the
    ``replace`` stuffs dots.
    """
    proto = SMTPClientProtocol()
    proto._state = ClientState.send_data
    proto._extensions = frozenset({"8BITMIME", "SMTPUTF8"})
    proto._smtputf8_message = False
    proto.data(message)
    sink(proto.get_outgoing_data())


def _encoders(data: bytes) -> dict[str, tuple[Callable[..., None], Any, str]]:
    """name -> (function, its input, note)."""
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    return {
        "ours: DataEncoder, 256 KiB chunks (as the procedures)": (ours_chunked, data, ""),
        "ours: DataEncoder, whole message": (ours_whole, data, ""),
        "reference: 4 x bytes.replace, whole": (reference, data, "target"),
        "smtplib: data(bytes) = _quote_periods": (
            smtplib_bytes,
            data,
            "bare CR/LF sent as is",
        ),
        "smtplib: sendmail(str) = _fix_eols + encode + _quote_periods": (
            smtplib_str,
            data.decode("ascii"),
            "",
        ),
        "aiosmtplib: 2 x re.sub, whole": (aiosmtplib_encode, data, ""),
        "smtpproto: EmailMessage.as_bytes + replace": (
            smtpproto_encode,
            parsed,
            "input is an EmailMessage",
        ),
    }


def _is_clean(out: bytes) -> bool:
    """Every CR and LF is part of a CRLF, and the data ends with CRLF.CRLF."""
    bare = out.replace(b"\r\n", b"")
    return b"\r" not in bare and b"\n" not in bare and out.endswith(b"\r\n.\r\n")


def bench_data(args: argparse.Namespace) -> None:
    size = args.size * MiB
    data = _common.big_message(size)
    print(f"### b. DATA encoding, {args.size} MiB message\n")
    lfs, crlfs, crs, dots = (data.count(s) for s in (b"\n", b"\r\n", b"\r", b"\n."))
    print(
        f"{lfs:,} LFs ({crlfs:,} in CRLF), {crs - crlfs:,} bare CRs, "
        f"{dots:,} lines starting with '.'; MB/s = 10^6 bytes of input "
        "per second; best of "
        f"{args.data_repeats}.  `same bytes as ours` compares the whole output with "
        "ours; `clean` = no bare CR/LF, ends in CRLF.CRLF.\n"
    )
    encoders = _encoders(data)
    expected: list[bytes] = []
    ours_whole(data, expected.append)
    checks = {}
    for name, (func, arg, _) in encoders.items():
        out: list[bytes] = []
        func(arg, out.append)
        joined = b"".join(out)
        checks[name] = (joined == expected[0], _is_clean(joined))
        del out, joined
    times = _common.best_of(
        {
            name: (lambda a, f=func: f(a, _discard), lambda a=arg: a)
            for name, (func, arg, _) in encoders.items()
        },
        repeats=args.data_repeats,
        min_time=0.0,
    )
    target = times["reference: 4 x bytes.replace, whole"]
    rows = []
    for name, (_, _, note) in encoders.items():
        same, clean = checks[name]
        rows.append(
            [
                name,
                f"{size / times[name] / 1e6:,.0f}",
                f"{times[name] * 1e3:,.1f}",
                ratio(target, times[name]),
                "yes" if same else "no",
                "yes" if clean else "no",
                note,
            ]
        )
    table(
        ["encoder", "MB/s", "ms", "speed vs reference", "same bytes as ours", "clean", "note"],
        rows,
    )


def _discard(_: bytes) -> None:
    return None


# -- c. memory ------------------------------------------------------------------------


def bench_memory(args: argparse.Namespace) -> None:
    sizes = args.memory_sizes
    print("### c. Peak memory while encoding (tracemalloc)\n")
    print(
        "Peak of Python allocations during one encoding, the input (already in memory)\n"
        "not counted; the output is handed to a sink that drops it (as a socket write\n"
        "would).  For smtpproto the input is the parsed EmailMessage.\n"
    )
    peaks: dict[str, dict[int, int]] = {}
    for size in sizes:
        data = _common.big_message(size * MiB)
        for name, (func, arg, _) in _encoders(data).items():
            tracemalloc.start()
            tracemalloc.reset_peak()
            func(arg, _discard)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            peaks.setdefault(name, {})[size] = peak
            del arg
        del data
    rows = []
    for name, by_size in peaks.items():
        cells = [f"{by_size[s] / MiB:,.2f}" for s in sizes]
        rows.append([name, *cells, f"{by_size[sizes[-1]] / by_size[sizes[0]]:.2f}x"])
    table(
        [
            "encoder",
            *(f"peak MiB @ {s} MiB" for s in sizes),
            f"growth {sizes[0]}→{sizes[-1]} MiB",
        ],
        rows,
    )


def profile_replies(args: argparse.Namespace) -> None:
    """CProfile of ``Connection.next_event`` and ``ReplyReader`` on the burst."""
    buffers, replies, verb = CASES[f"burst of {BURST_SIZE:,} `250 2.1.5 Ok`, one read"]
    rounds = 20 if args.quick else 200
    conns = [_connection_setup(verb, replies)() for _ in range(rounds)]
    readers = [ReplyReader() for _ in range(rounds)]
    run_conn, run_reader = _connection_run(buffers), _reader_run(buffers)
    profiler = cProfile.Profile()
    profiler.enable()
    for conn in conns:
        run_conn(conn)
    for reader in readers:
        run_reader(reader)
    profiler.disable()
    print(f"### cProfile: {rounds} bursts of {replies:,} replies, Connection then ReplyReader\n")
    print("```")
    pstats.Stats(profiler).strip_dirs().sort_stats("tottime").print_stats(25)
    print("```")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument(
        "--only", choices=["replies", "data", "memory"], action="append", help="run only these"
    )
    parser.add_argument(
        "--profile-replies", action="store_true", help="cProfile the reply parsing instead"
    )
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.min_time = 1, 0.05
        args.size, args.data_repeats = 2, 1
        args.memory_sizes = [1, 2]
    else:
        args.repeats, args.min_time = 5, 0.5
        args.size, args.data_repeats = 50, 5
        args.memory_sizes = [10, 50]
    if args.profile_replies:
        _common.header("Profile: reply parsing")
        profile_replies(args)
        return
    _common.header("Engine benchmarks (no sockets)")
    only = set(args.only or ["replies", "data", "memory"])
    if "replies" in only:
        bench_replies(args)
    if "data" in only:
        bench_data(args)
    if "memory" in only:
        bench_memory(args)
    _common.footer()


if __name__ == "__main__":
    main()
