"""The postfix test fixture itself, exercised with the standard library's smtplib.

Needs ``tests._postfix`` registered as a plugin (``pytest_plugins`` in
tests/conftest.py, or ``-p tests._postfix``).
"""

from __future__ import annotations

import os
import shutil
import smtplib
import socket
import tempfile
import uuid
from pathlib import Path

import pytest

from tests._postfix import (
    TEST_DOMAIN,
    PostfixServer,
    SmtpSink,
    WaitForMessagesTimeout,
    smtp_sink_path,
    strip_trace_headers,
)


def _running(server: PostfixServer | SmtpSink) -> bool:
    """Read ``running`` afresh (mypy would keep it narrowed from an earlier assert)."""
    return server.running


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@{TEST_DOMAIN}"


def _connect(server: PostfixServer) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, local_hostname="client.test", timeout=30)


def test_ehlo_advertises_extensions(postfix_server: PostfixServer) -> None:
    with _connect(postfix_server) as client:
        code, _ = client.ehlo()
        assert code == 250
        for ext in (
            "pipelining",
            "size",
            "8bitmime",
            "smtputf8",
            "chunking",
            "dsn",
            "enhancedstatuscodes",
        ):
            assert client.has_extn(ext), ext
        assert not client.has_extn("starttls")


def test_message_round_trips_byte_for_byte(postfix_server: PostfixServer) -> None:
    rcpt = _unique("roundtrip")
    message = (
        b"From: Sender <sender@client.test>\r\n"
        b"To: <" + rcpt.encode() + b">\r\n"
        b"Subject: round trip\r\n"
        b"Message-ID: <" + uuid.uuid4().hex.encode() + b"@client.test>\r\n"
        b"Date: Mon, 23 Nov 2026 03:00:00 +0000\r\n"
        b"X-Folded: first part\r\n"
        b"\tsecond part\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n"
        b"Hello,\r\n"
        b".a line that starts with a dot\r\n"
        b"..two dots\r\n"
        b"trailing spaces   \r\n"
        b"8-bit: \xc3\xa9t\xc3\xa9\r\n"
        b"\r\n"
        b"From the end.\r\n"
    )
    with _connect(postfix_server) as client:
        refused = client.sendmail(
            "sender@client.test", [rcpt], message, mail_options=["BODY=8BITMIME"]
        )
    assert refused == {}

    [raw] = postfix_server.wait_for_messages(1, recipient=rcpt)
    assert b"\r\n" not in raw  # delivered with LF line endings
    head = raw.split(b"\n\n", 1)[0].decode("utf-8")
    assert head.startswith("Return-Path: <sender@client.test>\n")
    assert f"\nDelivered-To: {rcpt}\n" in head
    assert "\nReceived: from " in head
    assert strip_trace_headers(raw) == message


def test_one_copy_per_recipient(postfix_server: PostfixServer) -> None:
    rcpts = [_unique("first"), _unique("second")]
    message = b"Subject: two recipients\r\n\r\nbody\r\n"
    with _connect(postfix_server) as client:
        assert client.sendmail("sender@client.test", rcpts, message) == {}
    for rcpt in rcpts:
        [raw] = postfix_server.wait_for_messages(1, recipient=rcpt)
        assert strip_trace_headers(raw) == message


def test_smtputf8_recipient(postfix_server: PostfixServer) -> None:
    rcpt = f"d\u00e9j\u00e0-{uuid.uuid4().hex[:8]}@{TEST_DOMAIN}"
    message = f"Subject: caf\u00e9\r\nTo: <{rcpt}>\r\n\r\nna\u00efve\r\n".encode()
    with _connect(postfix_server) as client:
        client.ehlo()
        assert client.has_extn("smtputf8")
        refused = client.sendmail(
            "s\u00e9nder@client.test",
            [rcpt],
            message,
            mail_options=["SMTPUTF8", "BODY=8BITMIME"],
        )
    assert refused == {}
    [raw] = postfix_server.wait_for_messages(1, recipient=rcpt)
    assert strip_trace_headers(raw) == message


def test_wait_for_messages_times_out_with_log(postfix_server: PostfixServer) -> None:
    with pytest.raises(WaitForMessagesTimeout) as info:
        postfix_server.wait_for_messages(1, timeout=0.3, recipient=_unique("nobody"))
    text = str(info.value)
    assert "postfix log" in text
    # The log really is there: its tail, whatever earlier tests made it hold.
    assert " postfix/" in text


def test_clear_messages(postfix_server: PostfixServer) -> None:
    rcpt = _unique("clear")
    with _connect(postfix_server) as client:
        client.sendmail("sender@client.test", [rcpt], b"Subject: x\r\n\r\ny\r\n")
    postfix_server.wait_for_messages(1, recipient=rcpt)
    postfix_server.clear_messages()
    assert postfix_server.messages() == []


def test_standalone_server_stops_all_processes() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="smtpclient-postfix-test-"))
    try:
        with PostfixServer(workdir) as server:
            assert server.running
            rcpt = _unique("standalone")
            with _connect(server) as client:
                client.sendmail("sender@client.test", [rcpt], b"Subject: s\r\n\r\nb\r\n")
            server.wait_for_messages(1)
            assert len(server.process_ids()) >= 3  # master, qmgr, smtpd, ...
        assert not _running(server)
        assert server.process_ids() == []
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(server.address, timeout=2),
        ):
            pass
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_other_domains_are_refused_at_rcpt(postfix_server: PostfixServer) -> None:
    # Relaying from 127.0.0.0/8 is permitted, but the only transport for
    # other domains is "error", which smtpd turns into a 550 at RCPT time:
    # the test server never queues mail for, or connects to, other hosts.
    rcpt = _unique("accepted")
    with _connect(postfix_server) as client:
        refused = client.sendmail(
            "sender@client.test",
            ["someone@example.com", rcpt],
            b"Subject: relay\r\n\r\nbody\r\n",
        )
    code, reply = refused["someone@example.com"]
    assert code == 550
    assert b"outbound delivery is disabled" in reply
    assert list(refused) == ["someone@example.com"]
    postfix_server.wait_for_messages(1, recipient=rcpt)


def test_strip_trace_headers_only_strips_the_leading_block() -> None:
    raw = (
        b"Return-Path: <a@b.test>\n"
        b"X-Original-To: c@postfix.test\n"
        b"Delivered-To: c@postfix.test\n"
        b"Received: from client.test (localhost [127.0.0.1])\n"
        b"\tby postfix.test (Postfix) with ESMTP id ABC\n"
        b"\tfor <c@postfix.test>; Mon, 23 Nov 2026 03:00:00 +0000 (UTC)\n"
        b"Received: by client.test; sent by the client itself\n"
        b"Subject: s\n"
        b"\n"
        b"Delivered-To: in the body\n"
    )
    assert strip_trace_headers(raw) == (
        b"Received: by client.test; sent by the client itself\r\n"
        b"Subject: s\r\n"
        b"\r\n"
        b"Delivered-To: in the body\r\n"
    )
    assert strip_trace_headers(b"Subject: s\n\nbody\n") == b"Subject: s\r\n\r\nbody\r\n"


def test_smtp_sink_accepts_a_message() -> None:
    assert os.access(smtp_sink_path(), os.X_OK)
    with SmtpSink() as sink:
        assert sink.running
        with smtplib.SMTP(sink.host, sink.port, timeout=30) as client:
            client.ehlo()
            assert client.has_extn("pipelining")
            assert (
                client.sendmail("a@client.test", ["b@sink.test"], b"Subject: x\r\n\r\ny\r\n") == {}
            )
    assert not _running(sink)
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(sink.address, timeout=2),
    ):
        pass
