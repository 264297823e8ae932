"""AUTH (RFC 4954) in the engine: the command, the state rows, the login procedure."""

from __future__ import annotations

import base64

import pytest

import smtp_core as sc
from smtp_core import Connection, LocalProtocolError, ReplyError, procedures
from tests.test_core_procedures import GREETING, Replay

EHLO_AUTH = b"250-srv.test\r\n250-AUTH PLAIN LOGIN SCRAM-SHA-256 XOAUTH2\r\n250 8BITMIME\r\n"


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def authed_session(ehlo: bytes = EHLO_AUTH, **options: bool) -> tuple[Connection, Replay]:
    conn = Connection(tls_policy="none", **options)
    replay = Replay([GREETING, ehlo])
    replay.run(procedures.handshake(conn, "client.test"))
    replay.written = b""
    return conn, replay


def test_plain_with_initial_response_is_one_round_trip() -> None:
    conn, replay = authed_session(tls_active=True)
    replay.chunks = iter([b"235 2.7.0 ok\r\n"])
    reply = replay.run(procedures.login(conn, sc.Plain("user", "pass")))
    assert replay.written == b"AUTH PLAIN " + b64(b"\0user\0pass") + b"\r\n"
    assert reply.code == 235
    with pytest.raises(LocalProtocolError, match="already authenticated"):
        conn.send(sc.Auth("PLAIN", b"\0u\0p"))


def test_credentials_are_refused_in_the_clear_by_default() -> None:
    conn, replay = authed_session()
    with pytest.raises(LocalProtocolError, match="TLS is off"):
        replay.run(procedures.login(conn, sc.Plain("user", "pass")))
    assert replay.written == b""


def test_opting_in_allows_auth_in_the_clear() -> None:
    conn, replay = authed_session(auth_in_clear=True)
    replay.chunks = iter([b"235 ok\r\n"])
    assert replay.run(procedures.login(conn, sc.Plain("u", "p"))).code == 235


def test_required_tls_policy_wins_over_the_opt_in() -> None:
    conn = Connection(tls_policy="required", auth_in_clear=True)
    Replay([GREETING, EHLO_AUTH]).run(procedures.greet(conn))
    conn.send(sc.Ehlo("client.test"))
    conn.receive_data(EHLO_AUTH)
    conn.next_event()
    with pytest.raises(LocalProtocolError, match="TLS is off"):
        conn.send(sc.Auth("PLAIN"))


def test_mechanism_not_offered_is_refused() -> None:
    conn, _ = authed_session(tls_active=True)
    with pytest.raises(LocalProtocolError, match="AUTH CRAM-MD5 was not offered"):
        conn.send(sc.Auth("CRAM-MD5"))


def test_login_two_challenges() -> None:
    conn, replay = authed_session(tls_active=True)
    replay.chunks = iter(
        [
            b"334 " + b64(b"Username:") + b"\r\n",
            b"334 " + b64(b"Password:") + b"\r\n",
            b"235 ok\r\n",
        ]
    )
    replay.run(procedures.login(conn, sc.Login("jö", "pässword")))
    assert replay.written == (
        b"AUTH LOGIN\r\n" + b64("jö".encode()) + b"\r\n" + b64("pässword".encode()) + b"\r\n"
    )


# RFC 7677 §3, the SCRAM-SHA-256 example exchange.
CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_scram_sha_256_rfc_7677_exchange_verifies_the_server() -> None:
    conn, replay = authed_session(tls_active=True)
    replay.chunks = iter(
        [
            b"334 " + b64(SERVER_FIRST) + b"\r\n",
            b"334 " + b64(SERVER_FINAL) + b"\r\n",
            b"235 ok\r\n",
        ]
    )
    replay.run(procedures.login(conn, sc.ScramSHA256("user", "pencil", nonce=CLIENT_NONCE)))
    lines = replay.written.split(b"\r\n")
    assert lines[0] == b"AUTH SCRAM-SHA-256 " + b64(b"n,,n=user,r=" + CLIENT_NONCE.encode())
    assert base64.b64decode(lines[1]) == CLIENT_FINAL
    assert lines[2] == b""  # the empty answer to the server's final message


def test_scram_bad_server_signature_cancels() -> None:
    conn, replay = authed_session(tls_active=True)
    forged = b"v=" + b64(b"\0" * 32)
    replay.chunks = iter(
        [
            b"334 " + b64(SERVER_FIRST) + b"\r\n",
            b"334 " + b64(forged) + b"\r\n",
            b"501 5.7.0 cancelled\r\n",
        ]
    )
    with pytest.raises(sc.RemoteSASLError):
        replay.run(procedures.login(conn, sc.ScramSHA256("user", "pencil", nonce=CLIENT_NONCE)))
    assert replay.written.endswith(b"\r\n*\r\n")


def test_scram_235_before_the_server_proved_itself_is_refused() -> None:
    conn, replay = authed_session(tls_active=True)
    replay.chunks = iter([b"334 " + b64(SERVER_FIRST) + b"\r\n", b"235 ok\r\n"])
    with pytest.raises(sc.RemoteSASLError):
        replay.run(procedures.login(conn, sc.ScramSHA256("user", "pencil", nonce=CLIENT_NONCE)))


def test_challenge_that_is_not_base64_cancels() -> None:
    conn, replay = authed_session(tls_active=True)
    replay.chunks = iter([b"334 !!!\r\n", b"501 cancelled\r\n"])
    with pytest.raises(sc.RemoteProtocolError, match="not base64"):
        replay.run(procedures.login(conn, sc.Login("u", "p")))
    assert replay.written == b"AUTH LOGIN\r\n*\r\n"


class Patient(sc.SASLMechanism):
    """A mechanism that answers any number of challenges."""

    name = "LOGIN"

    def initial_response(self) -> bytes | None:
        return None

    def respond(self, challenge: bytes) -> bytes:
        return b"again"

    @property
    def done(self) -> bool:
        return True


def test_endless_challenges_are_cut_off() -> None:
    conn, replay = authed_session(tls_active=True)
    replay.chunks = iter([b"334 " + b64(b"more?") + b"\r\n"] * 11 + [b"501 cancelled\r\n"])
    with pytest.raises(sc.RemoteProtocolError, match="more than 10 challenges"):
        replay.run(procedures.login(conn, Patient()))
    assert replay.written.endswith(b"\r\n*\r\n")


def test_refused_credentials_raise_reply_error() -> None:
    conn, replay = authed_session(tls_active=True)
    replay.chunks = iter([b"535 5.7.8 authentication failed\r\n"])
    with pytest.raises(ReplyError, match="AUTH drew 535"):
        replay.run(procedures.login(conn, sc.Plain("u", "wrong")))
    # Not authenticated: a second attempt is allowed.
    replay.chunks = iter([b"235 ok\r\n"])
    assert replay.run(procedures.login(conn, sc.Plain("u", "right"))).code == 235


def test_overlong_initial_response_waits_for_the_empty_challenge() -> None:
    conn, replay = authed_session(tls_active=True)
    # The longest token whose initial response still fits on a response line
    # (12288 octets) but not on the AUTH line, which adds "AUTH XOAUTH2 ".
    token = "t" * 9182
    assert (
        len(b"AUTH XOAUTH2 " + b64(sc.XOAuth2("user@x.test", token).initial_response() or b""))
        > 12286
    )
    replay.chunks = iter([b"334 \r\n", b"235 ok\r\n"])
    replay.run(procedures.login(conn, sc.XOAuth2("user@x.test", token)))
    first, second, _ = replay.written.split(b"\r\n")
    assert first == b"AUTH XOAUTH2"
    assert (
        base64.b64decode(second)
        == b"user=user@x.test\x01auth=Bearer " + token.encode() + b"\x01\x01"
    )


def test_authenticate_picks_the_strongest_offered() -> None:
    conn, replay = authed_session(tls_active=True)
    replay.chunks = iter([b"535 no\r\n"])
    with pytest.raises(ReplyError):
        replay.run(procedures.authenticate(conn, "user", "pencil"))
    assert replay.written.startswith(b"AUTH SCRAM-SHA-256 ")


def test_authenticate_with_a_token_uses_xoauth2() -> None:
    conn, replay = authed_session(tls_active=True)
    replay.chunks = iter([b"235 ok\r\n"])
    replay.run(procedures.authenticate(conn, "user@x.test", token="ya29.token"))
    assert replay.written.startswith(b"AUTH XOAUTH2 ")


def test_authenticate_without_a_common_mechanism() -> None:
    conn, replay = authed_session(b"250-x\r\n250 AUTH GSSAPI\r\n", tls_active=True)
    with pytest.raises(LocalProtocolError, match="no AUTH mechanism in common"):
        replay.run(procedures.authenticate(conn, "user", "pencil"))
    assert replay.written == b""


def test_auth_commands_are_checked_and_never_show_secrets() -> None:
    with pytest.raises(LocalProtocolError, match="not a SASL name"):
        sc.Auth("PLAIN X")
    with pytest.raises(TypeError):
        sc.Auth("PLAIN", "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sc.AuthResponse("text")  # type: ignore[arg-type]
    assert sc.Auth("plain", b"").line() == "AUTH PLAIN ="
    assert "secret" not in repr(sc.AuthResponse(b"secret"))
    assert repr(sc.AuthResponse(cancel=True)) == "AuthResponse(<cancel>)"
    assert sc.AuthResponse(cancel=True).line() == "*"


def test_auth_not_during_a_transaction() -> None:
    conn, _ = authed_session(tls_active=True)
    conn.send(sc.Mail("a@b.test"))
    conn.receive_data(b"250 ok\r\n")
    conn.next_event()
    with pytest.raises(LocalProtocolError, match="in state MAIL"):
        conn.send(sc.Auth("PLAIN", b"\0u\0p"))
