"""Commands: refused with bad content, RFC 5321 syntax when strict, exact lines.

The loop over every command class and every ``str`` field follows h11's
``tests/test_events.py``: CR, LF and NUL are refused everywhere, in every mode.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtp_core import (
    BaseCommand,
    Command,
    Content,
    Data,
    Ehlo,
    EndOfContent,
    Expn,
    Helo,
    Help,
    Lhlo,
    LocalProtocolError,
    Mail,
    Noop,
    Quit,
    Rcpt,
    Rset,
    StartTLS,
    Vrfy,
)

Builder = Callable[[str], BaseCommand]

# Each str field of each command, with a value it accepts: (id, builder, good value).
FIELDS: list[tuple[str, Builder, str]] = [
    ("EHLO name", Ehlo, "client.example"),
    ("EHLO name lax", lambda v: Ehlo(v, strict=False), "client_example"),
    ("HELO name", Helo, "client.example"),
    ("HELO name lax", lambda v: Helo(v, strict=False), "client_example"),
    ("LHLO name", Lhlo, "client.example"),
    ("LHLO name lax", lambda v: Lhlo(v, strict=False), "client_example"),
    ("MAIL sender", Mail, "user@example.com"),
    ("MAIL sender lax", lambda v: Mail(v, strict=False), "John"),
    ("MAIL param", lambda v: Mail("a@b.example", (v,)), "SIZE=10"),
    ("MAIL param lax", lambda v: Mail("John", (v,), strict=False), "size=10"),
    ("MAIL 2nd param", lambda v: Mail("a@b.example", ("BODY=8BITMIME", v)), "SIZE=10"),
    ("RCPT recipient", Rcpt, "user@example.com"),
    ("RCPT recipient lax", lambda v: Rcpt(v, strict=False), "Sally"),
    ("RCPT postmaster", Rcpt, "Postmaster"),
    ("RCPT param", lambda v: Rcpt("a@b.example", (v,)), "NOTIFY=NEVER"),
    ("RCPT param lax", lambda v: Rcpt("Sally", (v,), strict=False), "notify=never"),
    ("NOOP", Noop, "anything at all"),
    ("VRFY", Vrfy, "user"),
    ("EXPN", Expn, "list"),
    ("HELP", Help, "MAIL"),
    ("Command verb", Command, "XFOO"),
    ("Command args", lambda v: Command("XFOO", v), "some args"),
]
FIELD_PARAMS = [pytest.param(b, g, id=i) for i, b, g in FIELDS]


def _insertions(good: str, bad: str) -> list[str]:
    """``bad`` put at the start, in the middle and at the end of ``good``."""
    middle = len(good) // 2
    return [bad + good, good[:middle] + bad + good[middle:], good + bad]


@pytest.mark.parametrize(("build", "good"), FIELD_PARAMS)
def test_good_value_builds(build: Builder, good: str) -> None:
    # The baseline of the loops below: without the bad character, no error.
    command = build(good)
    assert good in command.line()


@pytest.mark.parametrize("bad", ["\r", "\n", "\x00", "\r\n", "\r\nRSET"])
@pytest.mark.parametrize(("build", "good"), FIELD_PARAMS)
def test_cr_lf_nul_refused_everywhere(build: Builder, good: str, bad: str) -> None:
    for value in _insertions(good, bad):
        with pytest.raises(LocalProtocolError, match="contains CR, LF or NUL"):
            build(value)


@pytest.mark.parametrize("bad", ["\udc80", "x\ud800", "a\udfffb"])
@pytest.mark.parametrize(("build", "good"), FIELD_PARAMS)
def test_lone_surrogates_refused_everywhere(build: Builder, good: str, bad: str) -> None:
    # No UTF-8 form exists, so no line could carry the command.
    for value in _insertions(good, bad):
        with pytest.raises(LocalProtocolError, match="not encodable as UTF-8"):
            build(value)


@pytest.mark.parametrize("bad", [b"x", None, 1, ["x"]])
@pytest.mark.parametrize(("build", "good"), FIELD_PARAMS)
def test_non_str_is_a_type_error(build: Builder, good: str, bad: object) -> None:
    with pytest.raises(TypeError, match="must be str"):
        build(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "build",
    [
        lambda p: Mail("a@b.example", p),
        lambda p: Mail("John", p, strict=False),
        lambda p: Rcpt("a@b.example", p),
        lambda p: Rcpt("Sally", p, strict=False),
    ],
)
@pytest.mark.parametrize("params", [["SIZE=1"], "SIZE=1", None])
def test_params_must_be_a_tuple(build: Callable[[object], BaseCommand], params: object) -> None:
    with pytest.raises(TypeError, match="must be a tuple of str"):
        build(params)


def test_commands_are_frozen() -> None:
    commands: list[BaseCommand] = [Ehlo("a.example"), Mail("a@b.example"), Command("XFOO")]
    for command in commands:
        field = dataclasses.fields(command)[0].name  # type: ignore[arg-type]
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(command, field, "x\r\nRSET")


# -- addresses (RFC 5321 §4.1.2) ----------------------------------------------------

VALID_MAILBOXES = [
    "user@example.com",
    "first.last@sub.example.org",
    "a@b",
    "user@localhost",
    "u@123.example",
    "u@a-b.example",
    "u@xn--bcher-kva.example",
    "!#$%&'*+/=?^_`{|}~-@example.com",
    "user+tag@example.com",
    '"john doe"@example.com',
    '"a\\"b"@example.com',
    '"a\\\\b"@example.com',
    '"@"@example.com',
    '""@example.com',
    '"a.b"@example.com',
    "user@[192.0.2.1]",
    "user@[0.0.0.0]",
    "user@[255.255.255.255]",
    "user@[IPv6:2001:db8::1]",
    "user@[IPv6:::1]",
    "user@[IPv6:::ffff:192.0.2.1]",
    "user@[x-tag:some-content]",
    "user@[tag:a!b~c]",
    # RFC 6531: UTF-8 is syntax; whether the server takes it is checked by send().
    "\u00fcser@ex\u00e4mple.com",
    "\u7528\u6237@\u4f8b\u5b50.\u5e7f\u544a",
    '"\u00fc"@example.com',
]

INVALID_MAILBOXES = [
    "user",
    "user@",
    "@example.com",
    "user@@example.com",
    "us@er@example.com",
    ".user@example.com",
    "user.@example.com",
    "us..er@example.com",
    "user@-example.com",
    "user@example-.com",
    "user@ex..ample.com",
    "user@.example.com",
    "user@example.com.",
    "user@exa_mple.com",
    "user name@example.com",
    "user@example.com SIZE=1",
    "(comment)user@example.com",
    "user@example.com\t",
    "<user@example.com>",
    "user@example.com>",
    '"unterminated@example.com',
    '"a"b"@example.com',
    '"a\\"@example.com',
    '"a\tb"@example.com',
    "user@[256.0.0.1]",
    "user@[1.2.3]",
    "user@[1.2.3.4.5]",
    "user@[1.2.3.4",
    "user@1.2.3.4]",
    "user@[]",
    "user@[tag:]",
    "user@[:content]",
    "user@[tag-:content]",
    "user@[tag:a[b]",
    "user@[tag:a\\b]",
    "user@[tag:a b]",
    "user@[IPv6:]",
]


@pytest.mark.parametrize("address", VALID_MAILBOXES)
def test_valid_mailboxes(address: str) -> None:
    assert Mail(address).line() == f"MAIL FROM:<{address}>"
    assert Rcpt(address).line() == f"RCPT TO:<{address}>"


@pytest.mark.parametrize("address", INVALID_MAILBOXES)
def test_invalid_mailboxes(address: str) -> None:
    with pytest.raises(LocalProtocolError, match="MAIL sender is not an RFC 5321 mailbox"):
        Mail(address)
    with pytest.raises(LocalProtocolError, match="RCPT recipient is not an RFC 5321 mailbox"):
        Rcpt(address)


def test_null_reverse_path_is_for_mail_only() -> None:
    assert Mail("").line() == "MAIL FROM:<>"
    assert Mail("", ("RET=HDRS",)).line() == "MAIL FROM:<> RET=HDRS"
    with pytest.raises(LocalProtocolError, match="not an RFC 5321 mailbox: ''"):
        Rcpt("")


@pytest.mark.parametrize("name", ["Postmaster", "postmaster", "POSTMASTER", "PostMaster"])
def test_postmaster_is_for_rcpt_only(name: str) -> None:
    assert Rcpt(name).line() == f"RCPT TO:<{name}>"
    assert Rcpt(name, ("NOTIFY=NEVER",)).line() == f"RCPT TO:<{name}> NOTIFY=NEVER"
    with pytest.raises(LocalProtocolError, match="not an RFC 5321 mailbox"):
        Mail(name)


@pytest.mark.parametrize("name", ["Postmaster ", "Postmasters", "<Postmaster>"])
def test_not_quite_postmaster(name: str) -> None:
    with pytest.raises(LocalProtocolError):
        Rcpt(name)


def test_postmaster_at_domain_is_a_mailbox() -> None:
    assert Rcpt("Postmaster@example.com").line() == "RCPT TO:<Postmaster@example.com>"
    assert Mail("postmaster@example.com").line() == "MAIL FROM:<postmaster@example.com>"


def test_local_part_length() -> None:
    # RFC 5321 §4.5.3.1.1: 64 octets, counted in octets, not characters.
    for local in ["a" * 64, "\u00e9" * 32, '"' + "a" * 62 + '"']:
        assert Mail(local + "@example.com").sender == local + "@example.com"
    for local in ["a" * 65, "\u00e9" * 33, '"' + "a" * 63 + '"']:
        with pytest.raises(LocalProtocolError, match="local part is longer than 64 octets"):
            Mail(local + "@example.com")
        with pytest.raises(LocalProtocolError, match="local part is longer than 64 octets"):
            Rcpt(local + "@example.com")


def test_path_length() -> None:
    # RFC 5321 §4.5.3.1.3: 256 octets for the path, "<" and ">" included.
    local = "a" * 64
    fits = local + "@" + "d" * (254 - 65)
    assert len(fits) == 254
    assert Mail(fits).line() == f"MAIL FROM:<{fits}>"
    assert Rcpt(fits).line() == f"RCPT TO:<{fits}>"
    for over in [fits + "d", local + "@" + "\u00e9" * 95]:
        with pytest.raises(LocalProtocolError, match="is longer than 254 octets"):
            Mail(over)
        with pytest.raises(LocalProtocolError, match="is longer than 254 octets"):
            Rcpt(over)
    assert Mail(local + "@" + "\u00e9" * 94).sender.endswith("\u00e9")


# -- strict=False: smtplib's leniency, safety kept ----------------------------------


@pytest.mark.parametrize(
    "address", ["John", "Sally", "user name", "a@b@c", "", "\u00fc", "x" * 1000, "(x)"]
)
def test_lax_addresses(address: str) -> None:
    assert Mail(address, strict=False).line() == f"MAIL FROM:<{address}>"
    assert Rcpt(address, strict=False).line() == f"RCPT TO:<{address}>"


@pytest.mark.parametrize("address", ["<John>", "John>", "<John", "a>b", "a<b"])
def test_lax_addresses_refuse_angle_brackets(address: str) -> None:
    with pytest.raises(LocalProtocolError, match="contains '<' or '>'"):
        Mail(address, strict=False)
    with pytest.raises(LocalProtocolError, match="contains '<' or '>'"):
        Rcpt(address, strict=False)


# -- EHLO/HELO/LHLO names -----------------------------------------------------------

HELLOS = [Ehlo, Helo, Lhlo]
VALID_NAMES = [
    "client.example",
    "localhost",
    "a",
    "mail-1.example.org",
    "xn--bcher-kva.example",
    "[127.0.0.1]",
    "[IPv6:::1]",
    "[IPv6:2001:db8::25]",
    "[x-tag:content]",
    "b\u00fccher.example",  # syntax only; send() asks for the A-label
    "a" * 255,
]
INVALID_NAMES = [
    "-client.example",
    "client-.example",
    "client..example",
    ".client.example",
    "client.example.",
    "client_example",
    "[300.0.0.1]",
    "[127.0.0.1",
    "127.0.0.1]",
    "[]",
    "client.example:25",
    "user@client.example",
]


@pytest.mark.parametrize("kind", HELLOS)
@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_hello_names(kind: type[Ehlo | Helo | Lhlo], name: str) -> None:
    assert kind(name).line() == f"{kind.VERB} {name}"


@pytest.mark.parametrize("kind", HELLOS)
@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_hello_names(kind: type[Ehlo | Helo | Lhlo], name: str) -> None:
    with pytest.raises(LocalProtocolError, match="is neither a domain nor an address literal"):
        kind(name)
    # strict=False takes what smtplib takes.
    assert kind(name, strict=False).line() == f"{kind.VERB} {name}"


@pytest.mark.parametrize("kind", HELLOS)
def test_hello_name_length(kind: type[Ehlo | Helo | Lhlo]) -> None:
    with pytest.raises(LocalProtocolError, match="longer than 255 octets"):
        kind("a" * 256)
    with pytest.raises(LocalProtocolError, match="longer than 255 octets"):
        kind("\u00e9" * 128)
    assert kind("a" * 256, strict=False).name == "a" * 256


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("kind", HELLOS)
@pytest.mark.parametrize("name", ["", " ", "client example", "client.example "])
def test_hello_name_empty_or_spaced(
    kind: type[Ehlo | Helo | Lhlo], name: str, strict: bool
) -> None:
    with pytest.raises(LocalProtocolError, match="is empty or contains a space"):
        kind(name, strict=strict)


# -- ESMTP parameters ---------------------------------------------------------------

VALID_PARAMS = [
    "SIZE=1000",
    "BODY=8BITMIME",
    "BODY=BINARYMIME",
    "SMTPUTF8",
    "X-FOO=bar",
    "RET=HDRS",
    "ENVID=QQ314159",
    "ORCPT=rfc822;user@example.com",
    "NOTIFY=SUCCESS,DELAY,FAILURE",
    "AUTH=<>",
    "8BITMIME",
    "size=14",
    "A=\u00fc",
]
INVALID_PARAMS = ["-X", "=x", "SIZE=", "SIZE==1", "A=b=c", "K_EY=1", "\u00fc=1", "(x)"]


@pytest.mark.parametrize("param", VALID_PARAMS)
def test_valid_params(param: str) -> None:
    assert Mail("a@b.example", (param,)).line() == f"MAIL FROM:<a@b.example> {param}"
    assert Rcpt("a@b.example", (param,)).line() == f"RCPT TO:<a@b.example> {param}"


@pytest.mark.parametrize("param", INVALID_PARAMS)
def test_invalid_params(param: str) -> None:
    with pytest.raises(LocalProtocolError, match="MAIL parameter is not keyword"):
        Mail("a@b.example", (param,))
    with pytest.raises(LocalProtocolError, match="RCPT parameter is not keyword"):
        Rcpt("a@b.example", (param,))
    # strict=False sends them as given.
    assert Mail("John", (param,), strict=False).line() == f"MAIL FROM:<John> {param}"
    assert Rcpt("Sally", (param,), strict=False).line() == f"RCPT TO:<Sally> {param}"


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("param", ["", " ", "SIZE=1 BODY=7BIT", "SIZE= 1", " SIZE=1"])
def test_params_empty_or_spaced(param: str, strict: bool) -> None:
    with pytest.raises(LocalProtocolError, match="MAIL parameter is empty or contains a space"):
        Mail("a@b.example", (param,), strict=strict)
    with pytest.raises(LocalProtocolError, match="RCPT parameter is empty or contains a space"):
        Rcpt("a@b.example", (param,), strict=strict)


def test_params_in_order() -> None:
    mail = Mail("a@b.example", ("SIZE=10", "BODY=8BITMIME", "SMTPUTF8"))
    assert mail.line() == "MAIL FROM:<a@b.example> SIZE=10 BODY=8BITMIME SMTPUTF8"


# -- the wire form ------------------------------------------------------------------

LINES: list[tuple[BaseCommand, str, str]] = [
    (Ehlo("client.example"), "EHLO client.example", "ehlo client.example"),
    (Helo("client.example"), "HELO client.example", "helo client.example"),
    (Lhlo("client.example"), "LHLO client.example", "lhlo client.example"),
    (Mail("john@example.com"), "MAIL FROM:<john@example.com>", "mail from:<john@example.com>"),
    # CPython's test_smtplib: sendmail('John', 'Sally', ...) with SIZE.
    (
        Mail("John", ("size=14",), strict=False),
        "MAIL FROM:<John> size=14",
        "mail from:<John> size=14",
    ),
    (Rcpt("Sally", strict=False), "RCPT TO:<Sally>", "rcpt to:<Sally>"),
    (
        Rcpt("a@b.example", ("NOTIFY=NEVER",)),
        "RCPT TO:<a@b.example> NOTIFY=NEVER",
        "rcpt to:<a@b.example> NOTIFY=NEVER",
    ),
    (Data(), "DATA", "data"),
    (Rset(), "RSET", "rset"),
    (Noop(), "NOOP", "noop"),
    (Noop("ping"), "NOOP ping", "noop ping"),
    (Vrfy("user"), "VRFY user", "vrfy user"),
    (Expn("list"), "EXPN list", "expn list"),
    (Help(), "HELP", "help"),
    (Help("MAIL"), "HELP MAIL", "help MAIL"),
    (Quit(), "QUIT", "quit"),
    # smtplib sends docmd("STARTTLS"): upper case even in its lower-case world.
    (StartTLS(), "STARTTLS", "STARTTLS"),
    # The generic command is written as given, in either mode.
    (
        Command("XCLIENT", "NAME=x ADDR=192.0.2.1"),
        "XCLIENT NAME=x ADDR=192.0.2.1",
        "XCLIENT NAME=x ADDR=192.0.2.1",
    ),
    (Command("xfoo"), "xfoo", "xfoo"),
    (Command("X-EXPS", "GSSAPI"), "X-EXPS GSSAPI", "X-EXPS GSSAPI"),
]


@pytest.mark.parametrize(("command", "upper", "lower"), LINES, ids=[u for _, u, _ in LINES])
def test_line(command: BaseCommand, upper: str, lower: str) -> None:
    assert command.line() == upper
    assert command.line(lowercase=False) == upper
    assert command.line(lowercase=True) == lower


@pytest.mark.parametrize(
    ("command", "verb"),
    [
        (Ehlo("a.example"), "EHLO"),
        (Mail("a@b.example"), "MAIL"),
        (Rcpt("a@b.example"), "RCPT"),
        (StartTLS(), "STARTTLS"),
        (Command("xclient"), "XCLIENT"),
        (Command("X-Exps"), "X-EXPS"),
        (Content(b"x"), "<content>"),
        (EndOfContent(), "<end of data>"),
    ],
)
def test_verb(command: BaseCommand, verb: str) -> None:
    assert command.verb == verb


def test_ends_group() -> None:
    # RFC 2920 §3.1: only RSET, MAIL FROM, SEND/SOML/SAML FROM and RCPT TO may
    # be followed by another command before their reply.
    not_last: list[BaseCommand] = [Mail("a@b.example"), Rcpt("a@b.example"), Rset()]
    last: list[BaseCommand] = [
        Ehlo("a.example"), Helo("a.example"), Lhlo("a.example"), Data(), Noop(), Vrfy("x"),
        Expn("x"), Help(), Quit(), StartTLS(), Command("XFOO"), Content(b""), EndOfContent(),
    ]  # fmt: skip
    assert [c.ends_group for c in not_last] == [False] * len(not_last)
    assert [c.ends_group for c in last] == [True] * len(last)


@pytest.mark.parametrize("verb", ["XFOO", "X-EXPS", "a1", "A-1-b", "x"])
def test_generic_verb_accepted(verb: str) -> None:
    assert Command(verb).line() == verb


@pytest.mark.parametrize(
    "verb", ["", "1X", "-X", "X Y", "X:Y", "X_Y", "\u00c4X", "X\t", "MAIL FROM:<a@b>", " X"]
)
def test_generic_verb_refused(verb: str) -> None:
    with pytest.raises(LocalProtocolError, match="command verb is not letters, digits and '-'"):
        Command(verb)


@pytest.mark.parametrize("kind", [Vrfy, Expn])
def test_vrfy_expn_need_an_argument(kind: type[Vrfy | Expn]) -> None:
    with pytest.raises(LocalProtocolError, match=f"{kind.VERB} needs an argument"):
        kind("")


@pytest.mark.parametrize("data", [b"", b"x\r\n.\r\n", bytearray(b"x"), memoryview(b"x")])
def test_content_accepts_bytes_like(data: bytes) -> None:
    assert Content(data).data is data


@pytest.mark.parametrize("data", ["text", 5, None, [1, 2]])
def test_content_refuses_non_bytes(data: object) -> None:
    with pytest.raises(TypeError, match="content must be bytes"):
        Content(data)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (Mail("user@example.com"), False),
        (Mail("\u00fcser@example.com"), True),
        (Mail("user@ex\u00e4mple.com"), True),
        (Mail("user@example.com", ("A=\u00fc",)), True),
        (Mail("", ("SMTPUTF8",)), False),
        (Rcpt("user@example.com"), False),
        (Rcpt("\u7528\u6237@example.com"), True),
        (Ehlo("client.example"), False),
        (Ehlo("b\u00fccher.example"), True),
        (Vrfy("\u00fc"), True),
        (Noop(), False),
        (Data(), False),
        (Command("XFOO", "\u00fc"), True),
        (Command("XFOO", "x"), False),
        (Content(b"\xff"), False),
    ],
)
def test_has_non_ascii(command: BaseCommand, expected: bool) -> None:
    assert command.has_non_ascii() is expected


# -- hypothesis ---------------------------------------------------------------------

_chars = st.one_of(
    st.characters(),
    st.sampled_from(["\r", "\n", "\x00", "<", ">", "@", ".", " ", '"', "=", "\udc80", "\ud800"]),
)
_text = st.text(_chars, max_size=30)
_args = st.one_of(_text, st.just("a@b.example"), st.builds(lambda a, b: f"{a}@{b}", _text, _text))

_builders: list[Callable[[str, bool], BaseCommand]] = [
    lambda v, s: Ehlo(v, strict=s),
    lambda v, s: Helo(v, strict=s),
    lambda v, s: Lhlo(v, strict=s),
    lambda v, s: Mail(v, strict=s),
    lambda v, s: Rcpt(v, strict=s),
    lambda v, s: Mail("a@b.example", (v,), strict=s),
    lambda v, s: Rcpt("a@b.example", ("SIZE=1", v), strict=s),
    lambda v, s: Noop(v),
    lambda v, s: Vrfy(v),
    lambda v, s: Expn(v),
    lambda v, s: Help(v),
    lambda v, s: Command(v),
    lambda v, s: Command("XFOO", v),
]


@given(st.sampled_from(_builders), _args, st.booleans(), st.booleans())
def test_any_text_builds_a_safe_command_or_is_refused(
    build: Callable[[str, bool], BaseCommand], value: str, strict: bool, lowercase: bool
) -> None:
    try:
        command = build(value, strict)
    except LocalProtocolError:
        return
    line = command.line(lowercase)
    assert not any(c in line for c in "\r\n\x00")
    line.encode()  # every command that exists has a UTF-8 form
    assert command.has_non_ascii() is (not line.isascii())


_atext = st.sampled_from("abcXYZ019!#$%&'*+/=?^_`{|}~-\u00fc")
_atom = st.text(_atext, min_size=1, max_size=6)  # 4 atoms stay under 64 octets
_label = st.from_regex(r"\A[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?\Z")


@given(
    st.lists(_atom, min_size=1, max_size=4).map(".".join),
    st.lists(_label, min_size=1, max_size=4).map(".".join),
)
def test_generated_mailboxes_are_accepted(local: str, domain: str) -> None:
    address = f"{local}@{domain}"
    assert Mail(address).line() == f"MAIL FROM:<{address}>"
    assert Rcpt(address).line(lowercase=True) == f"rcpt to:<{address}>"


@pytest.mark.parametrize(
    "params", [(), ("NOTIFY=NEVER",), ("NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;a@b.c")]
)
@pytest.mark.parametrize("lowercase", [False, True])
def test_rcpt_line_shortcut_matches_the_generic_line(
    params: tuple[str, ...], lowercase: bool
) -> None:
    """Rcpt overrides line() for speed; it must write what BaseCommand.line writes."""
    rcpt = Rcpt("user@example.com", params)
    generic = BaseCommand.line(rcpt, lowercase)
    assert rcpt.line(lowercase) == generic
    verb = "rcpt" if lowercase else "RCPT"
    assert generic == f"{verb} {rcpt.arguments(lowercase)}"
