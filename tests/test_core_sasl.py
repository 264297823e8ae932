"""SASL mechanisms and SASLprep: the RFC examples byte for byte, then the edges.

The SCRAM examples are RFC 5802 §5 and RFC 7677 §3, CRAM-MD5 is RFC 2195 §2,
SASLprep is the table of RFC 4013 §3.  Where no RFC gives a vector (non-ASCII
passwords) a small SCRAM server written here from the formulas of RFC 5802 §3
checks the client, recovering ClientKey from the proof the way a server does
rather than recomputing the proof the way the client does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import stringprep
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from smtp_core._errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from smtp_core._sasl import (
    MAX_SCRAM_ITERATIONS,
    MIN_SCRAM_ITERATIONS,
    PASSWORD_MECHANISMS,
    TOKEN_MECHANISMS,
    CramMD5,
    LocalSASLError,
    Login,
    OAuthBearer,
    Plain,
    RemoteSASLError,
    SASLError,
    SASLMechanism,
    ScramSHA1,
    ScramSHA256,
    XOAuth2,
    choose_mechanism,
    mechanism_for,
)
from smtp_core._saslprep import SASLprepError, saslprep


def finished(mech: SASLMechanism) -> bool:
    """``mech.done``, read through a call so that mypy does not narrow it for good."""
    return mech.done


# -- RFC 5802 §5 and RFC 7677 §3 ---------------------------------------------------

RFC5802_NONCE = "fyko+d2lbbFgONRv9qkxdawL"
RFC5802_SERVER_FIRST = b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
RFC5802_CLIENT_FINAL = (
    b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
)
RFC5802_SERVER_FINAL = b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="

RFC7677_NONCE = "rOprNGfwEbeRWgbNEkqO"
RFC7677_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC7677_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC7677_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def rfc5802() -> ScramSHA1:
    """The RFC 5802 §5 client, after its first message."""
    mech = ScramSHA1("user", "pencil", nonce=RFC5802_NONCE)
    assert mech.initial_response() == b"n,,n=user,r=" + RFC5802_NONCE.encode()
    return mech


def test_scram_sha1_rfc5802_example() -> None:
    mech = rfc5802()
    assert mech.name == "SCRAM-SHA-1"
    assert not finished(mech)
    assert mech.respond(RFC5802_SERVER_FIRST) == RFC5802_CLIENT_FINAL
    assert not finished(mech)
    # SMTP carries the server-final message in a 334 challenge; the answer is empty.
    assert mech.respond(RFC5802_SERVER_FINAL) == b""
    assert finished(mech)
    mech.finish()


def test_scram_sha256_rfc7677_example() -> None:
    mech = ScramSHA256("user", "pencil", nonce=RFC7677_NONCE)
    assert mech.name == "SCRAM-SHA-256"
    assert mech.initial_response() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    assert mech.respond(RFC7677_SERVER_FIRST) == RFC7677_CLIENT_FINAL
    assert mech.respond(RFC7677_SERVER_FINAL) == b""
    mech.finish()


def test_scram_server_final_with_success() -> None:
    # Protocols that carry additional data with success hand it to finish().
    mech = rfc5802()
    mech.respond(RFC5802_SERVER_FIRST)
    mech.finish(RFC5802_SERVER_FINAL)
    assert finished(mech)


def test_scram_without_initial_response() -> None:
    # RFC 4422 §5: the server opens a client-first mechanism with an empty challenge.
    mech = ScramSHA1("user", "pencil", nonce=RFC5802_NONCE)
    assert mech.respond(b"") == b"n,,n=user,r=" + RFC5802_NONCE.encode()
    assert mech.respond(RFC5802_SERVER_FIRST) == RFC5802_CLIENT_FINAL


@pytest.mark.parametrize(
    "tampered",
    [
        b"v=AmF9pqV8S7suAoZWja4dJRkFsKQ=",  # one character changed
        b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",  # SHA-256's signature
        b"v=AAAA",  # too short
    ],
)
def test_scram_tampered_server_signature(tampered: bytes) -> None:
    mech = rfc5802()
    mech.respond(RFC5802_SERVER_FIRST)
    with pytest.raises(RemoteSASLError, match="does not verify") as info:
        mech.respond(tampered)
    assert isinstance(info.value, RemoteProtocolError)
    assert info.value.server_error is None
    assert not finished(mech)
    with pytest.raises(RemoteSASLError, match="before the exchange was complete"):
        mech.finish()


def test_scram_server_error_instead_of_server_first() -> None:
    # RFC 5802 erratum 5271: a server may fail at once with e=.
    mech = rfc5802()
    with pytest.raises(RemoteSASLError, match="reports 'unknown-user'") as info:
        mech.respond(b"e=unknown-user")
    assert info.value.server_error == "unknown-user"


def test_scram_server_error_attribute() -> None:
    mech = rfc5802()
    mech.respond(RFC5802_SERVER_FIRST)
    with pytest.raises(RemoteSASLError, match="invalid-proof") as info:
        mech.respond(b"e=invalid-proof")
    assert info.value.server_error == "invalid-proof"


@pytest.mark.parametrize(
    "server_first",
    [
        b"r=somebody-elses-nonce3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
        b"r=fyko+d2lbbFgONRv9qkxdaw,s=QSXCR+Q6sek8bf92,i=4096",  # ours, cut short
    ],
)
def test_scram_server_nonce_must_extend_ours(server_first: bytes) -> None:
    mech = rfc5802()
    with pytest.raises(RemoteSASLError, match="does not extend ours"):
        mech.respond(server_first)


def test_scram_server_nonce_may_add_nothing() -> None:
    # RFC 5802 §7: nonce = "r=" c-nonce [s-nonce]
    mech = rfc5802()
    reply = mech.respond(b"r=" + RFC5802_NONCE.encode() + b",s=QSXCR+Q6sek8bf92,i=4096")
    assert reply.startswith(b"c=biws,r=" + RFC5802_NONCE.encode() + b",p=")


@pytest.mark.parametrize("iterations", [1, 4095])
def test_scram_low_iteration_count_refused(iterations: int) -> None:
    mech = rfc5802()
    with pytest.raises(RemoteSASLError, match=f"iteration count {iterations} is outside"):
        mech.respond(b"r=%s3rfc,s=QSXCR+Q6sek8bf92,i=%d" % (RFC5802_NONCE.encode(), iterations))


def test_scram_high_iteration_count_refused() -> None:
    mech = ScramSHA1("user", "pencil", nonce=RFC5802_NONCE, max_iterations=5000)
    mech.initial_response()
    with pytest.raises(RemoteSASLError, match="outside the accepted 4096 to 5000"):
        mech.respond(b"r=%s3rfc,s=QSXCR+Q6sek8bf92,i=5001" % RFC5802_NONCE.encode())
    assert MIN_SCRAM_ITERATIONS == 4096
    assert MAX_SCRAM_ITERATIONS >= 100_000


def test_scram_min_iterations_override() -> None:
    mech = ScramSHA1("user", "pencil", nonce=RFC5802_NONCE, min_iterations=1)
    mech.initial_response()
    reply = mech.respond(b"r=%s3rfc,s=QSXCR+Q6sek8bf92,i=1" % RFC5802_NONCE.encode())
    assert b",p=" in reply


@pytest.mark.parametrize(("low", "high"), [(0, 10), (10, 9)])
def test_scram_iteration_bounds_checked(low: int, high: int) -> None:
    with pytest.raises(ValueError, match="min_iterations <= max_iterations"):
        ScramSHA256("user", "pencil", min_iterations=low, max_iterations=high)


@pytest.mark.parametrize(
    "server_first",
    [
        b"",
        b"garbage",
        b"s=QSXCR+Q6sek8bf92,r=fyko+d2lbbFgONRv9qkxdawL3rfc,i=4096",  # order is fixed
        b"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf9,i=4096",  # bad base64
        b"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=,i=4096",  # empty salt
        b"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=04096",
        b"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=" + b"9" * 5000,
        b"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096,",
        b"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096,x=\xff",  # not UTF-8
        b"r=fyko+d2lbbFgONRv9qkxdawL\xc3\xa9,s=QSXCR+Q6sek8bf92,i=4096",  # nonce not ASCII
    ],
)
def test_scram_malformed_server_first(server_first: bytes) -> None:
    mech = rfc5802()
    with pytest.raises(RemoteSASLError, match="malformed server-first-message"):
        mech.respond(server_first)


def test_scram_server_first_extensions_ignored() -> None:
    mech = rfc5802()
    reply = mech.respond(RFC5802_SERVER_FIRST + ",x=caf\u00e9,y=1".encode())
    assert reply.startswith(b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=")


def test_scram_mandatory_extension_refused() -> None:
    # RFC 5802 §5.1 m: "the client MUST authenticate by failing" on any m=.
    mech = rfc5802()
    with pytest.raises(RemoteSASLError, match="requires an extension"):
        mech.respond(b"m=future," + RFC5802_SERVER_FIRST)


@pytest.mark.parametrize(
    "server_final",
    [b"", b"v=", b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ", b"x=1", b"e=", b"e=bad,", b"v=\xff"],
)
def test_scram_malformed_server_final(server_final: bytes) -> None:
    mech = rfc5802()
    mech.respond(RFC5802_SERVER_FIRST)
    with pytest.raises(RemoteSASLError, match="malformed server-final-message"):
        mech.respond(server_final)


def test_scram_server_final_extensions_ignored() -> None:
    mech = rfc5802()
    mech.respond(RFC5802_SERVER_FIRST)
    assert mech.respond(RFC5802_SERVER_FINAL + b",z=later") == b""
    assert finished(mech)


def test_scram_nothing_after_server_final() -> None:
    mech = rfc5802()
    mech.respond(RFC5802_SERVER_FIRST)
    mech.respond(RFC5802_SERVER_FINAL)
    with pytest.raises(RemoteSASLError, match="unexpected challenge"):
        mech.respond(RFC5802_SERVER_FINAL)
    with pytest.raises(RemoteSASLError, match="unexpected challenge"):
        mech.finish(RFC5802_SERVER_FINAL)


def test_scram_success_data_before_server_first() -> None:
    mech = rfc5802()
    with pytest.raises(RemoteSASLError, match="unexpected additional data"):
        mech.finish(RFC5802_SERVER_FINAL)


def test_scram_success_before_verification() -> None:
    mech = rfc5802()
    mech.respond(RFC5802_SERVER_FIRST)
    with pytest.raises(RemoteSASLError, match="before the exchange was complete"):
        mech.finish()


@pytest.mark.parametrize(
    ("username", "escaped"),
    [("a,b", b"a=2Cb"), ("a=b", b"a=3Db"), ("=,=", b"=3D=2C=3D"), ("=2C", b"=3D2C")],
)
def test_scram_username_escaping(username: str, escaped: bytes) -> None:
    mech = ScramSHA256(username, "pencil", nonce="abc")
    assert mech.initial_response() == b"n,,n=" + escaped + b",r=abc"


def test_scram_authzid() -> None:
    mech = ScramSHA1("user", "pencil", authzid="ad,min", nonce=RFC5802_NONCE)
    assert mech.initial_response() == b"n,a=ad=2Cmin,n=user,r=" + RFC5802_NONCE.encode()
    reply = mech.respond(RFC5802_SERVER_FIRST)
    assert reply.startswith(b"c=" + base64.b64encode(b"n,a=ad=2Cmin,") + b",r=")


def test_scram_random_nonce() -> None:
    first = ScramSHA256("user", "pencil").initial_response()
    second = ScramSHA256("user", "pencil").initial_response()
    assert first != second
    nonce = first.rpartition(b",r=")[2]
    assert re.fullmatch(rb"[A-Za-z0-9_-]{32}", nonce)


@pytest.mark.parametrize("nonce", ["", "a,b", "caf\u00e9", "a b"])
def test_scram_injected_nonce_checked(nonce: str) -> None:
    with pytest.raises(ValueError, match="nonce must be printable ASCII"):
        ScramSHA1("user", "pencil", nonce=nonce)


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("", "pencil", "username is empty"),
        ("\u00ad", "pencil", "username is empty"),
        ("user", "", "password is empty"),
        ("user", "pen\x07cil", "password holds U[+]0007"),
        ("us\u200eer", "pencil", "username holds U[+]200E"),
    ],
)
def test_scram_credentials_refused(username: str, password: str, message: str) -> None:
    with pytest.raises(LocalSASLError, match=message) as info:
        ScramSHA256(username, password)
    assert isinstance(info.value, LocalProtocolError)
    assert password not in str(info.value) or not password


def test_scram_authzid_with_control_character() -> None:
    with pytest.raises(LocalSASLError, match="authzid contains a control character"):
        ScramSHA1("user", "pencil", authzid="a\x01b")


# -- a SCRAM server written from RFC 5802 §3, for vectors no RFC gives -------------


class ReferenceScramServer:
    """The server side of RFC 5802, verifying the client as §3 describes."""

    def __init__(self, hash_name: str, password: bytes, salt: bytes, iterations: int) -> None:
        self.hash_name = hash_name
        salted = hashlib.pbkdf2_hmac(hash_name, password, salt, iterations)
        client_key = hmac.new(salted, b"Client Key", hash_name).digest()
        self.stored_key = hashlib.new(hash_name, client_key).digest()
        self.server_key = hmac.new(salted, b"Server Key", hash_name).digest()
        self.salt = salt
        self.iterations = iterations
        self.username = ""
        self.authzid = ""

    @staticmethod
    def unescape(saslname: bytes) -> str:
        return saslname.replace(b"=2C", b",").replace(b"=3D", b"=").decode()

    def first(self, client_first: bytes, server_nonce: str) -> bytes:
        flag, authzid, bare = client_first.split(b",", 2)
        assert flag == b"n"
        assert authzid == b"" or authzid.startswith(b"a=")
        self.gs2_header = flag + b"," + authzid + b","
        self.authzid = self.unescape(authzid[2:])
        user, nonce = bare.split(b",")
        assert user.startswith(b"n=")
        assert nonce.startswith(b"r=")
        self.username = self.unescape(user[2:])
        self.nonce = nonce[2:] + server_nonce.encode()
        self.client_first_bare = bare
        salt = base64.b64encode(self.salt)
        self.server_first = b"r=%s,s=%s,i=%d" % (self.nonce, salt, self.iterations)
        return self.server_first

    def final(self, client_final: bytes) -> bytes:
        without_proof, _, proof = client_final.rpartition(b",p=")
        assert without_proof == b"c=%s,r=%s" % (base64.b64encode(self.gs2_header), self.nonce)
        auth_message = self.client_first_bare + b"," + self.server_first + b"," + without_proof
        signature = hmac.new(self.stored_key, auth_message, self.hash_name).digest()
        client_key = bytes(x ^ y for x, y in zip(base64.b64decode(proof), signature, strict=True))
        if hashlib.new(self.hash_name, client_key).digest() != self.stored_key:
            return b"e=invalid-proof"
        server_signature = hmac.new(self.server_key, auth_message, self.hash_name).digest()
        return b"v=" + base64.b64encode(server_signature)


def run_scram(
    mech: ScramSHA1 | ScramSHA256, server: ReferenceScramServer, server_nonce: str = "srv"
) -> None:
    client_final = mech.respond(server.first(mech.initial_response(), server_nonce))
    assert mech.respond(server.final(client_final)) == b""
    mech.finish()


@pytest.mark.parametrize("cls", [ScramSHA1, ScramSHA256])
def test_scram_non_ascii_password(cls: type[ScramSHA1 | ScramSHA256]) -> None:
    # smtplib encodes credentials as ASCII (CPython gh-73936); here the
    # password is UTF-8 after SASLprep, so a decomposed "pässwörd" and the
    # precomposed one the server stored are the same password.
    stored = "p\u00e4ssw\u00f6rd".encode()
    assert stored == b"p\xc3\xa4ssw\xc3\xb6rd"
    server = ReferenceScramServer(cls._hash, stored, b"salt-salt", 4096)
    run_scram(cls("j\u00fcrgen", "pa\u0308sswo\u0308rd"), server)
    assert server.username == "j\u00fcrgen"


def test_scram_wrong_password_draws_server_error() -> None:
    server = ReferenceScramServer("sha256", b"pencil", b"salt", 4096)
    mech = ScramSHA256("user", "pen", nonce="n0nce")
    client_final = mech.respond(server.first(mech.initial_response(), "srv"))
    with pytest.raises(RemoteSASLError) as info:
        mech.respond(server.final(client_final))
    assert info.value.server_error == "invalid-proof"


# Letters, digits, punctuation (including "," and "="), symbols and spaces
# from all of Unicode: most survive SASLprep, the rest are filtered out.
credential = st.text(
    st.characters(categories=("L", "M", "N", "P", "S", "Zs")), min_size=1, max_size=12
)


def prepares(text: str) -> bool:
    try:
        return saslprep(text) != ""
    except SASLprepError:
        return False


@given(
    username=credential,
    password=credential,
    authzid=st.none() | st.text(st.characters(codec="utf-8", min_codepoint=0x20), max_size=8),
    nonce=st.from_regex(r"[\x21-\x2b\x2d-\x7e]{1,20}", fullmatch=True),
    server_nonce=st.from_regex(r"[\x21-\x2b\x2d-\x7e]{0,8}", fullmatch=True),
    salt=st.binary(min_size=1, max_size=16),
    iterations=st.integers(1, 20),
    sha256=st.booleans(),
)
def test_scram_against_reference_server(
    *,
    username: str,
    password: str,
    authzid: str | None,
    nonce: str,
    server_nonce: str,
    salt: bytes,
    iterations: int,
    sha256: bool,
) -> None:
    assume(prepares(username) and prepares(password))
    assume(authzid is None or "\x7f" not in authzid)
    cls = ScramSHA256 if sha256 else ScramSHA1
    mech = cls(username, password, authzid=authzid, nonce=nonce, min_iterations=1)
    server = ReferenceScramServer(cls._hash, saslprep(password).encode(), salt, iterations)
    run_scram(mech, server, server_nonce)
    assert server.username == saslprep(username)
    assert server.authzid == (authzid or "")


@given(st.binary() | st.from_regex(rb"r=fyko\+d2lbbFgONRv9qkxdawL[!-~]*", fullmatch=True))
def test_scram_server_first_fuzz(server_first: bytes) -> None:
    mech = ScramSHA1("user", "pencil", nonce=RFC5802_NONCE, min_iterations=1, max_iterations=50)
    mech.initial_response()
    try:
        reply = mech.respond(server_first)
    except RemoteSASLError:
        return
    assert reply.startswith(b"c=biws,r=" + RFC5802_NONCE.encode())


@given(st.binary() | st.from_regex(rb"[ev]=[!-~]*", fullmatch=True))
def test_scram_server_final_fuzz(server_final: bytes) -> None:
    mech = rfc5802()
    mech.respond(RFC5802_SERVER_FIRST)
    with pytest.raises(RemoteSASLError):
        mech.respond(server_final)


# -- SASLprep (RFC 4013) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_", "expected"),
    [
        ("I\u00adX", "IX"),  # SOFT HYPHEN mapped to nothing
        ("user", "user"),  # no transformation
        ("USER", "USER"),  # case preserved
        ("\u00aa", "a"),  # output is NFKC
        ("\u2168", "IX"),  # output is NFKC
        # Beyond the RFC's table:
        ("a\u00a0b\u3000c", "a b c"),  # C.1.2 spaces mapped to SPACE
        ("\u1680", " "),  # even one NFKC would leave alone (OGHAM SPACE MARK)
        ("\ufeffx\u200b", "x"),  # more of B.1
        ("", ""),
        ("\u00ad", ""),
        ("\u0627\u0628", "\u0627\u0628"),  # right-to-left, both ends RandALCat
        ("\u0627 1 \u0628", "\u0627 1 \u0628"),  # neutrals between are fine
        ("\u0221", "\u0221"),  # unassigned in Unicode 3.2: allowed in queries
        ("\U0001f600", "\U0001f600"),
    ],
)
def test_saslprep_examples(given_: str, expected: str) -> None:
    assert saslprep(given_) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("\u0007", "U[+]0007 at position 0, a prohibited ASCII control character [(]C.2.1[)]"),
        ("\u0627\u0031", "does not begin and end with one"),
        ("1\u0627", "does not begin and end with one"),
        ("\u0627a\u0628", "U[+]0061 at position 1, a left-to-right character"),
        ("\u0000", "C.2.1"),
        ("\x7f", "C.2.1"),
        ("\u0085", "C.2.2"),
        ("\ue000", "C.3"),
        ("\U000ffffe", "C.4"),
        ("\udc80", "C.5"),
        ("\ufffd", "C.6"),  # (U+FFF9 to U+FFFC are C.2.2 as well)
        ("\u2ff0", "C.7"),
        ("\u200e", "C.8"),
        ("\U000e0001", "C.9"),
    ],
)
def test_saslprep_refusals(text: str, message: str) -> None:
    with pytest.raises(SASLprepError, match=message):
        saslprep(text)


def test_saslprep_stored_strings() -> None:
    with pytest.raises(SASLprepError, match=r"U[+]0221 at position 1, unassigned"):
        saslprep("x\u0221", allow_unassigned=False)
    assert saslprep("x\u00e9", allow_unassigned=False) == "x\u00e9"


def test_saslprep_names_the_string_not_its_content() -> None:
    with pytest.raises(SASLprepError) as info:
        saslprep("secret\x07", what="password")
    assert str(info.value).startswith("password holds U+0007")
    assert "secret" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_saslprep_needs_str() -> None:
    with pytest.raises(TypeError, match="password must be str, not bytes"):
        saslprep(b"pencil", what="password")  # type: ignore[arg-type]


@given(st.text())
def test_saslprep_only_documented_errors_and_idempotent(text: str) -> None:
    try:
        prepared = saslprep(text)
    except SASLprepError:
        return
    assert saslprep(prepared) == prepared
    for char in prepared:
        assert not stringprep.in_table_b1(char)
        assert not stringprep.in_table_c12(char)


# -- PLAIN (RFC 4616) ---------------------------------------------------------------


def test_plain() -> None:
    mech = Plain("tim", "tanstaaftanstaaf")
    assert mech.name == "PLAIN"
    assert not finished(mech)
    assert mech.initial_response() == b"\0tim\0tanstaaftanstaaf"
    assert finished(mech)
    mech.finish()


def test_plain_authzid_and_non_ascii_password() -> None:
    # RFC 4616 §4 example shape (authzid "Ursel", authcid "Kurt"), with a
    # non-ASCII password: UTF-8 on the wire, after SASLprep (NFKC, soft hyphen
    # dropped).
    mech = Plain("Kurt", "xipj3pl\u00ad\u00e4\u2168", authzid="Ursel")
    assert mech.initial_response() == b"Ursel\0Kurt\0xipj3pl\xc3\xa4IX"


def test_plain_without_initial_response() -> None:
    mech = Plain("user", "pencil")
    assert mech.respond(b"") == b"\0user\0pencil"
    assert finished(mech)


def test_plain_refuses_a_non_empty_first_challenge() -> None:
    mech = Plain("user", "pencil")
    with pytest.raises(RemoteSASLError, match="must be empty, got b'hello'"):
        mech.respond(b"hello")


def test_plain_refuses_a_challenge_after_its_message() -> None:
    mech = Plain("user", "pencil")
    mech.initial_response()
    with pytest.raises(RemoteSASLError, match="unexpected challenge b''"):
        mech.respond(b"")
    with pytest.raises(RemoteSASLError, match="unexpected additional data"):
        mech.finish(b"")


def test_plain_initial_response_only_once() -> None:
    mech = Plain("user", "pencil")
    mech.initial_response()
    with pytest.raises(LocalSASLError, match="after the exchange started"):
        mech.initial_response()


def test_plain_success_before_message() -> None:
    with pytest.raises(RemoteSASLError, match="before the exchange was complete"):
        Plain("user", "pencil").finish()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("user", "pencil", "ad\0min"), "authzid contains NUL"),
        (("user", "pencil", "\udc80"), "authzid is not encodable as UTF-8"),
        (("us\0er", "pencil", None), "username holds U[+]0000"),
        (("user", "\u00ad", None), "password is empty after SASLprep"),
    ],
)
def test_plain_refusals(args: tuple[str, str, str | None], message: str) -> None:
    username, password, authzid = args
    with pytest.raises(LocalSASLError, match=message):
        Plain(username, password, authzid=authzid)


@given(username=credential, password=credential, authzid=credential)
def test_plain_splits_back(username: str, password: str, authzid: str) -> None:
    assume(prepares(username) and prepares(password))
    message = Plain(username, password, authzid=authzid).initial_response()
    assert message.decode().split("\0") == [authzid, saslprep(username), saslprep(password)]


# -- LOGIN --------------------------------------------------------------------------


def test_login_two_steps() -> None:
    mech = Login("user", "p\u00e4ss")
    assert mech.name == "LOGIN"
    assert mech.initial_response() is None
    assert mech.respond(b"Username:") == b"user"
    assert not finished(mech)
    assert mech.respond(b"Password:") == b"p\xc3\xa4ss"
    assert finished(mech)
    mech.finish()
    with pytest.raises(RemoteSASLError, match="unexpected challenge b'Again:'"):
        mech.respond(b"Again:")


def test_login_ignores_challenge_text() -> None:
    mech = Login("user", "pencil")
    assert mech.respond(b"User Name\0") == b"user"
    assert mech.respond(b"") == b"pencil"


def test_login_initial_username() -> None:
    mech = Login("user", "pencil", initial_username=True)
    assert mech.initial_response() == b"user"
    assert mech.respond(b"Password:") == b"pencil"
    assert finished(mech)
    with pytest.raises(LocalSASLError, match="LOGIN: initial_response"):
        mech.initial_response()


def test_login_success_before_password() -> None:
    mech = Login("user", "pencil")
    mech.respond(b"Username:")
    with pytest.raises(RemoteSASLError, match="before the exchange was complete"):
        mech.finish()


def test_login_credentials_checked() -> None:
    with pytest.raises(LocalSASLError, match="password is not encodable as UTF-8"):
        Login("user", "\udc80")
    with pytest.raises(TypeError, match="username must be str, not bytes"):
        Login(b"user", "pencil")  # type: ignore[arg-type]


# -- CRAM-MD5 (RFC 2195) ------------------------------------------------------------


def test_cram_md5_rfc2195_example() -> None:
    mech = CramMD5("tim", "tanstaaftanstaaf")
    assert mech.name == "CRAM-MD5"
    assert mech.initial_response() is None
    assert not finished(mech)
    challenge = b"<1896.697170952@postoffice.reston.mci.net>"
    assert mech.respond(challenge) == b"tim b913a602c7eda7a495b4e6e7334d3890"
    assert finished(mech)
    mech.finish()
    with pytest.raises(RemoteSASLError, match="unexpected challenge"):
        mech.respond(challenge)


def test_cram_md5_non_ascii_password() -> None:
    mech = CramMD5("tim", "t\u00e4nstaaf\u00ad")
    expected = hmac.new("t\u00e4nstaaf".encode(), b"<1.2@x>", "md5").hexdigest()
    assert mech.respond(b"<1.2@x>") == b"tim " + expected.encode()


def test_cram_md5_refuses_an_empty_challenge() -> None:
    with pytest.raises(RemoteSASLError, match="unexpected challenge b''"):
        CramMD5("tim", "tanstaaftanstaaf").respond(b"")


def test_cram_md5_refuses_a_prohibited_password() -> None:
    with pytest.raises(LocalSASLError, match=r"refused by SASLprep .* password holds U[+]E000"):
        CramMD5("tim", "\ue000")


# -- XOAUTH2 and OAUTHBEARER (RFC 7628) ---------------------------------------------

TOKEN = "ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="
ERROR_JSON = b'{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}'


def test_xoauth2() -> None:
    mech = XOAuth2("someuser@example.com", TOKEN)
    assert mech.name == "XOAUTH2"
    assert mech.initial_response() == (
        b"user=someuser@example.com\x01auth=Bearer " + TOKEN.encode() + b"\x01\x01"
    )
    assert mech.error_challenge is None
    mech.finish()


def test_xoauth2_error_challenge_gets_an_empty_response() -> None:
    mech = XOAuth2("someuser@example.com", TOKEN)
    mech.initial_response()
    assert mech.respond(ERROR_JSON) == b""
    assert mech.error_challenge == ERROR_JSON
    with pytest.raises(RemoteSASLError, match="unexpected challenge"):
        mech.respond(ERROR_JSON)


def test_oauthbearer_rfc7628_shape() -> None:
    # RFC 7628 §4.1, with the RFC's host, port and token.
    token = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="
    mech = OAuthBearer("user@example.com", token, host="server.example.com", port=143)
    assert mech.name == "OAUTHBEARER"
    assert mech.initial_response() == (
        b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
        b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    )


@pytest.mark.parametrize("username", [None, ""])
def test_oauthbearer_without_authzid(username: str | None) -> None:
    mech = OAuthBearer(username, "tok")
    assert mech.initial_response() == b"n,,\x01auth=Bearer tok\x01\x01"


def test_oauthbearer_escapes_the_authzid() -> None:
    mech = OAuthBearer("a,b=c", "tok")
    assert mech.initial_response() == b"n,a=a=2Cb=3Dc,\x01auth=Bearer tok\x01\x01"


def test_oauthbearer_error_challenge_gets_kvsep() -> None:
    mech = OAuthBearer("user@example.com", "tok")
    mech.initial_response()
    assert mech.respond(ERROR_JSON) == b"\x01"
    assert mech.error_challenge == ERROR_JSON
    assert finished(mech)


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: XOAuth2("us\x01er", "tok"), LocalSASLError, "username contains a control"),
        (lambda: XOAuth2("user", "to\x01k"), LocalSASLError, "token is empty or holds"),
        (lambda: XOAuth2("user", ""), LocalSASLError, "token is empty"),
        (lambda: XOAuth2("user", "t k"), LocalSASLError, "token is empty"),
        (lambda: OAuthBearer("user", "tok", host="a\x01b"), LocalSASLError, "host is empty"),
        (lambda: OAuthBearer("user", "tok", host=""), LocalSASLError, "host is empty"),
        (lambda: OAuthBearer("user", "tok", port=0), ValueError, "port must be 1 to 65535"),
        (lambda: OAuthBearer("user", "tok", port=65536), ValueError, "port must be"),
        (
            lambda: XOAuth2("user", b"tok"),  # type: ignore[arg-type]
            TypeError,
            "token must be str, not bytes",
        ),
    ],
)
def test_token_mechanism_refusals(
    build: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as info:
        build()
    assert "to\x01k" not in str(info.value)


# -- the chooser and the factory ----------------------------------------------------


@pytest.mark.parametrize(
    ("advertised", "expected"),
    [
        ({"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"}, "SCRAM-SHA-256"),
        ({"LOGIN", "PLAIN", "SCRAM-SHA-1"}, "SCRAM-SHA-1"),
        ({"LOGIN", "PLAIN", "CRAM-MD5"}, "CRAM-MD5"),
        ({"login", "plain"}, "PLAIN"),  # case does not matter
        ({"LOGIN", "XOAUTH2", "OAUTHBEARER"}, "LOGIN"),
        ({"XOAUTH2", "OAUTHBEARER", "GSSAPI"}, None),  # never a token mechanism for a password
        (set(), None),
    ],
)
def test_choose_mechanism_for_a_password(advertised: set[str], expected: str | None) -> None:
    assert choose_mechanism(advertised) == expected
    assert choose_mechanism(frozenset(advertised)) == expected


def test_choose_mechanism_for_a_token() -> None:
    both = frozenset({"PLAIN", "XOAUTH2", "OAUTHBEARER"})
    assert choose_mechanism(both, token=True) == "OAUTHBEARER"
    assert choose_mechanism({"PLAIN", "XOAUTH2"}, token=True) == "XOAUTH2"
    assert choose_mechanism({"PLAIN", "LOGIN"}, token=True) is None
    assert choose_mechanism(both, ("xoauth2", "OAUTHBEARER"), token=True) == "XOAUTH2"


def test_choose_mechanism_preference() -> None:
    advertised = {"PLAIN", "LOGIN", "SCRAM-SHA-256"}
    assert choose_mechanism(advertised, ("LOGIN", "PLAIN")) == "LOGIN"
    assert choose_mechanism(advertised, ["cram-md5"]) is None
    # A mixed list serves both kinds; each call skips the other kind.
    mixed = ("XOAUTH2", "PLAIN")
    assert choose_mechanism({"XOAUTH2", "PLAIN"}, mixed) == "PLAIN"
    assert choose_mechanism({"XOAUTH2", "PLAIN"}, mixed, token=True) == "XOAUTH2"
    assert PASSWORD_MECHANISMS[0] == "SCRAM-SHA-256"
    assert TOKEN_MECHANISMS == ("OAUTHBEARER", "XOAUTH2")


def test_choose_mechanism_misuse() -> None:
    with pytest.raises(ValueError, match="no client mechanism named 'GSSAPI'"):
        choose_mechanism({"GSSAPI"}, ("GSSAPI", "PLAIN"))
    with pytest.raises(TypeError, match="not a str"):
        choose_mechanism({"PLAIN"}, "PLAIN")


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("SCRAM-SHA-256", ScramSHA256),
        ("scram-sha-1", ScramSHA1),
        ("CRAM-MD5", CramMD5),
        ("PLAIN", Plain),
        ("LOGIN", Login),
    ],
)
def test_mechanism_for_a_password(name: str, cls: type[SASLMechanism]) -> None:
    mech = mechanism_for(name, "user", "pencil", host="mail.example.com", port=587)
    assert type(mech) is cls
    assert mech.name == name.upper()


def test_mechanism_for_passes_options() -> None:
    plain = mechanism_for("PLAIN", "user", "pencil", authzid="admin")
    assert plain.initial_response() == b"admin\0user\0pencil"
    scram = mechanism_for("SCRAM-SHA-1", "user", "pencil", authzid="admin", min_iterations=1)
    first = scram.initial_response()
    assert first is not None
    assert first.startswith(b"n,a=admin,n=user,r=")
    scram.respond(b"r=%s,s=QSXCR+Q6sek8bf92,i=1" % first.rpartition(b"r=")[2])


def test_mechanism_for_a_token() -> None:
    xoauth2 = mechanism_for("xoauth2", "user", token="tok")
    assert xoauth2.initial_response() == b"user=user\x01auth=Bearer tok\x01\x01"
    bearer = mechanism_for("OAUTHBEARER", "user", token="tok", host="mx", port=25)
    assert bearer.initial_response() == (
        b"n,a=user,\x01host=mx\x01port=25\x01auth=Bearer tok\x01\x01"
    )


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("XOAUTH2", {"password": "pencil"}, "XOAUTH2 needs a token"),
        ("OAUTHBEARER", {"token": "tok", "authzid": "x"}, "carries no separate authzid"),
        ("GSSAPI", {"password": "pencil"}, "no client mechanism named 'GSSAPI'"),
        ("PLAIN", {"token": "tok"}, "PLAIN needs a password"),
        ("LOGIN", {"password": "pencil", "authzid": "x"}, "LOGIN carries no authzid"),
        ("CRAM-MD5", {"password": "pencil", "authzid": "x"}, "CRAM-MD5 carries no authzid"),
    ],
)
def test_mechanism_for_misuse(name: str, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mechanism_for(name, "user", **kwargs)


# -- the shape of the objects and the errors ----------------------------------------


def test_error_hierarchy() -> None:
    assert issubclass(SASLError, ProtocolError)
    assert issubclass(LocalSASLError, SASLError)
    assert issubclass(LocalSASLError, LocalProtocolError)
    assert issubclass(RemoteSASLError, SASLError)
    assert issubclass(RemoteSASLError, RemoteProtocolError)
    assert not issubclass(LocalSASLError, RemoteProtocolError)


@pytest.mark.parametrize(
    "mech",
    [
        Plain("user", "s3cret"),
        Login("user", "s3cret"),
        CramMD5("user", "s3cret"),
        XOAuth2("user", "s3cret"),
        OAuthBearer("user", "s3cret"),
        ScramSHA1("user", "s3cret"),
        ScramSHA256("user", "s3cret"),
    ],
    ids=lambda mech: mech.name,
)
def test_mechanisms_are_slotted_and_keep_secrets(mech: SASLMechanism) -> None:
    assert isinstance(mech, SASLMechanism)
    assert not hasattr(mech, "__dict__")
    assert "s3cret" not in repr(mech)
