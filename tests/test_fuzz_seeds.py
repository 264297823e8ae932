"""Replay every committed fuzz seed through its harness, without atheris.

Each harness in ``fuzz/`` has a plain ``check(data)`` that raises
``AssertionError`` when its invariant breaks; CI runs every seed in
``fuzz/seeds/<harness>/`` through it, so a crash the fuzzer found and saved as
``crash-*`` stays fixed.  A few tests break the engine on purpose
(monkeypatched) to show that the harnesses notice.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType

import pytest

import fuzz.fuzz_commands
import fuzz.fuzz_data
import fuzz.fuzz_facade
import fuzz.fuzz_replies
import fuzz.fuzz_session
import smtp_core
import smtpclient
from fuzz import HARNESSES
from fuzz._common import Header, bytewise, freeze, pack_splits, split_at
from smtp_core import _commands as commands_module
from smtp_core._replies import ReplyReader

SEEDS = Path(__file__).resolve().parent.parent / "fuzz" / "seeds"
MODULES: dict[str, ModuleType] = {
    name: importlib.import_module(f"fuzz.fuzz_{name}") for name in HARNESSES
}
CASES = [
    pytest.param(name, path, id=f"{name}/{path.name}")
    for name in HARNESSES
    for path in sorted((SEEDS / name).iterdir())
]


@pytest.mark.parametrize(("harness", "seed"), CASES)
def test_seed(harness: str, seed: Path) -> None:
    MODULES[harness].check(seed.read_bytes())


@pytest.mark.parametrize("harness", HARNESSES)
def test_harness_is_documented_and_seeded(harness: str) -> None:
    module = MODULES[harness]
    assert module.__doc__ is not None
    assert "INVARIANT:" in module.__doc__
    assert not module.SKIP, "a skipped invariant leaked into the replay"
    assert len(list((SEEDS / harness).iterdir())) >= 20


def test_the_harnesses_do_not_import_atheris() -> None:
    for path in (SEEDS.parent).glob("*.py"):
        source = path.read_text(encoding="utf-8")
        assert re.search(r"^\s*(import|from) atheris", source, re.MULTILINE) is None, path


@pytest.mark.parametrize("data", [b"", b"\x00", b"\xff" * 3, b"\x1f" * 70])
@pytest.mark.parametrize("harness", HARNESSES)
def test_short_and_degenerate_inputs(harness: str, data: bytes) -> None:
    MODULES[harness].check(data)


# -- the shared helpers ---------------------------------------------------------------


def test_split_at_keeps_every_byte() -> None:
    data = b"0123456789"
    assert split_at(data, [3, 3, 15, 0, 10]) == [b"012", b"3", b"456789"]
    assert split_at(b"", [5]) == []
    assert b"".join(bytewise(data)) == data


def test_header_reads_zeros_past_the_end() -> None:
    header = Header(pack_splits([1, 0x1234]) + b"rest")
    assert header.byte() == 2
    assert header.splits(2) == [1, 0x1234]
    assert header.rest() == b"rest"
    assert (header.byte(), header.u16(), header.rest()) == (0, 0, b"")


def test_freeze_sees_private_state() -> None:
    a, b = ReplyReader(), ReplyReader()
    assert freeze(a) == freeze(b)
    b.feed(b"2")
    assert freeze(a) != freeze(b)


# -- the harnesses notice a broken engine ----------------------------------------------


def test_data_harness_notices_a_missing_dot(monkeypatch: pytest.MonkeyPatch) -> None:
    data = fuzz.fuzz_data.make_input(b"abc")
    fuzz.fuzz_data.check(data)
    monkeypatch.setattr(smtp_core.DataEncoder, "end", lambda self: b".\r\n")
    with pytest.raises(AssertionError):
        fuzz.fuzz_data.check(data)


def test_reader_harnesses_notice_a_chunk_boundary_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    # A reader that loses an LF at the start of a chunk (after the CR ended the last).
    replies = fuzz.fuzz_replies.make_input(b"250 ok\r\n")
    session = fuzz.fuzz_session.make_input(b"220 hi\r\n250 ok\r\n250 ok\r\n")
    fuzz.fuzz_replies.check(replies)
    fuzz.fuzz_session.check(session)
    feed = ReplyReader.feed

    def lossy_feed(self: ReplyReader, data: bytes) -> None:
        feed(self, data[1:] if data.startswith(b"\n") else data)

    monkeypatch.setattr(ReplyReader, "feed", lossy_feed)
    # The connection feeds through the reader's ``feeder`` (no method call).
    monkeypatch.setattr(
        ReplyReader, "feeder", property(lambda self: lambda data: lossy_feed(self, data))
    )
    with pytest.raises(AssertionError):
        fuzz.fuzz_replies.check(replies)
    with pytest.raises(AssertionError):
        fuzz.fuzz_session.check(session)


def test_commands_harness_notices_an_injected_line(monkeypatch: pytest.MonkeyPatch) -> None:
    data = fuzz.fuzz_commands.make_input("NOOP", [b"a\r\nRSET"])
    fuzz.fuzz_commands.check(data)  # refused by the constructor: fine
    monkeypatch.setattr(commands_module, "check_safe", lambda what, value: None)
    with pytest.raises(AssertionError):
        fuzz.fuzz_commands.check(data)


def test_facade_harness_notices_a_false_success(monkeypatch: pytest.MonkeyPatch) -> None:
    # A sendmail that returns without sending anything: no end of data, no verdict.
    data = fuzz.fuzz_facade.make_input(b"220 hi\r\n250 ok\r\n221 bye\r\n")
    monkeypatch.setattr(smtpclient.SMTP, "sendmail", lambda self, *args, **kwargs: {})
    with pytest.raises(AssertionError, match="no-false-success"):
        fuzz.fuzz_facade.check(data)


def test_facade_harness_notices_a_stray_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    data = fuzz.fuzz_facade.make_input(b"220 hi\r\n250 ok\r\n", plan=[("NOOP", 0)])
    fuzz.fuzz_facade.check(data)
    socket_module = vars(smtpclient)["socket"]

    def noop(self: smtpclient.SMTP) -> tuple[int, bytes]:
        raise KeyError("noop")

    monkeypatch.setattr(smtpclient.SMTP, "noop", noop)
    with pytest.raises(AssertionError, match="allowed-exceptions"):
        fuzz.fuzz_facade.check(data)
    assert vars(smtpclient)["socket"] is socket_module  # the fake network is gone again
