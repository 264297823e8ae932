"""The pure modules of ``smtpclient.aio`` against aiosmtplib, input for input.

Each module that needs no I/O (errors, response, status, typing, esmtp, email, auth) is held
to aiosmtplib's observable behaviour two ways:

* a structural check: every public name of the aiosmtplib module exists in ours with the same
  kind, the same parameter names and kinds, the same enum members, and for exceptions the
  same attributes and the same MRO (aiosmtplib's classes matched by name, builtins by
  identity);
* differential properties: hypothesis draws inputs (EHLO replies, addresses, messages,
  credentials, reply codes and texts) and both implementations must return equal values or
  raise the same exception type (and, for SMTP errors, the same code).  Exception *messages*
  are our own wording and are not compared.

aiosmtplib is a test dependency and is imported plainly: if it is missing these tests fail.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import email
import email.header
import email.message
import email.policy
import enum
import functools
import inspect
import pickle
import re
import sys
from collections.abc import Callable
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from types import ModuleType
from typing import Any, cast

import aiosmtplib
import aiosmtplib.auth
import aiosmtplib.email
import aiosmtplib.errors
import aiosmtplib.esmtp
import aiosmtplib.response
import aiosmtplib.status
import aiosmtplib.typing
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from smtpclient.aio import auth as aio_auth
from smtpclient.aio import email as aio_email
from smtpclient.aio import errors as aio_errors
from smtpclient.aio import esmtp as aio_esmtp
from smtpclient.aio import response as aio_response
from smtpclient.aio import status as aio_status
from smtpclient.aio import typing as aio_typing

# Bytes drawn as integers: hypothesis compares choice sequences of earlier runs, and a str
# and a bytes choice at the same place would raise BytesWarning under ``python -bb``.
octets = st.lists(st.integers(0, 255), max_size=48).map(bytes)

MODULES: dict[str, tuple[ModuleType, ModuleType]] = {
    "errors": (aiosmtplib.errors, aio_errors),
    "response": (aiosmtplib.response, aio_response),
    "status": (aiosmtplib.status, aio_status),
    "typing": (aiosmtplib.typing, aio_typing),
    "esmtp": (aiosmtplib.esmtp, aio_esmtp),
    "email": (aiosmtplib.email, aio_email),
    "auth": (aiosmtplib.auth, aio_auth),
}

# Public in aiosmtplib without being in its __all__, and mirrored on purpose.
EXTRA_PUBLIC: dict[str, tuple[str, ...]] = {
    "errors": ("TimeoutError",),
    "email": ("extract_addresses",),
}

# Ours only: documented in smtpclient/aio/API.md.
OUR_ADDITIONS = {"SMTPOutcomeUnknownError", "SMTPStageTimeoutError"}


def outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    """What a call did, in a form both libraries can be compared on."""
    try:
        return ("value", call())
    except Exception as exc:  # every escape is part of the comparison
        code = getattr(exc, "code", None)
        return ("raises", type(exc).__name__, None if code is None else int(code))


def equal(left: object, right: object) -> bool:
    """``left == right``, for values mypy knows to be of unrelated classes."""
    return left == right


def same_outcome(ours: Callable[[], Any], theirs: Callable[[], Any]) -> tuple[Any, ...]:
    """Run both calls; fail unless they agree.  Returns the shared outcome."""
    expected = outcome(theirs)
    got = outcome(ours)
    assert got == expected
    return got


# -- structure ---------------------------------------------------------------------


def mro_shape(cls: type, own_package: str) -> list[object]:
    """The MRO with the library's own classes by name and everything else by identity."""
    return [c.__name__ if c.__module__.startswith(own_package) else c for c in cls.__mro__]


def parameter_shape(obj: Any) -> list[tuple[str, Any, Any]]:
    """Names, kinds and defaults of a callable's parameters (annotations left out)."""
    signature = inspect.signature(obj)
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


def sample_arguments(cls: type) -> list[Any]:
    """Positional arguments that build an instance of an aiosmtplib exception class."""
    samples = {"code": 550, "message": "no", "sender": "s@example.org"}
    samples |= {"recipient": "r@example.org", "recipients": []}
    return [samples[name] for name in inspect.signature(cls).parameters]


def public_names(name: str) -> list[str]:
    """The names of aiosmtplib's module that ours must offer."""
    theirs = MODULES[name][0]
    return [*theirs.__all__, *EXTRA_PUBLIC.get(name, ())]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_public_name_exists_with_the_same_kind(module: str) -> None:
    theirs, ours = MODULES[module]
    assert set(theirs.__all__) <= set(ours.__all__)
    assert set(ours.__all__) - set(theirs.__all__) <= OUR_ADDITIONS
    for name in public_names(module):
        their_obj, our_obj = getattr(theirs, name), getattr(ours, name)
        if inspect.isclass(their_obj):
            assert inspect.isclass(our_obj), name
            assert mro_shape(our_obj, "smtpclient.aio") == mro_shape(their_obj, "aiosmtplib")
            if issubclass(their_obj, enum.Enum):
                our_enum = cast("type[enum.Enum]", our_obj)
                theirs_members = {m.name: m.value for m in their_obj}
                assert {m.name: m.value for m in our_enum} == theirs_members
            elif their_obj.__module__.startswith("aiosmtplib"):
                assert parameter_shape(our_obj) == parameter_shape(their_obj), name
        elif inspect.isfunction(their_obj):
            assert inspect.isfunction(our_obj), name
            assert inspect.iscoroutinefunction(our_obj) == inspect.iscoroutinefunction(their_obj)
            assert parameter_shape(our_obj) == parameter_shape(their_obj), name
        elif isinstance(their_obj, enum.Enum):
            assert type(our_obj).__name__ == type(their_obj).__name__
            assert (our_obj.name, our_obj.value) == (their_obj.name, their_obj.value)
        else:  # type aliases (Callable[...], str | bytes | ...) compare structurally
            assert our_obj == their_obj, name


def exception_classes() -> list[str]:
    return list(aiosmtplib.errors.__all__)


@pytest.mark.parametrize("name", exception_classes())
def test_exceptions_have_the_same_attributes_and_rendering(name: str) -> None:
    theirs_cls = getattr(aiosmtplib.errors, name)
    ours_cls = getattr(aio_errors, name)
    arguments = sample_arguments(theirs_cls)
    theirs, ours = theirs_cls(*arguments), ours_cls(*arguments)
    assert vars(ours) == vars(theirs)
    assert ours.args == theirs.args
    assert str(ours) == str(theirs)
    assert repr(ours) == repr(theirs)
    for attribute in ("errno", "strerror", "filename"):
        assert getattr(ours, attribute, "absent") == getattr(theirs, attribute, "absent")
    for builtin in (ConnectionError, TimeoutError, OSError, asyncio.TimeoutError, Exception):
        assert isinstance(ours, builtin) == isinstance(theirs, builtin), builtin
    again = pickle.loads(pickle.dumps(ours))
    assert type(again) is ours_cls
    assert repr(again) == repr(ours)
    assert vars(again).keys() == vars(ours).keys()


def test_the_module_level_timeout_error_is_asyncios() -> None:
    theirs = getattr(aiosmtplib.errors, "TimeoutError")  # noqa: B009 - not re-exported for mypy
    assert aio_errors.TimeoutError is asyncio.TimeoutError is theirs


def test_a_timeout_is_the_builtin_timeout_error_only_from_python_311() -> None:
    builtin = sys.version_info >= (3, 11)  # before 3.11 asyncio.TimeoutError is its own class
    for errors in (aiosmtplib.errors, aio_errors):
        assert issubclass(errors.SMTPTimeoutError, TimeoutError) == builtin
        assert issubclass(errors.SMTPTimeoutError, asyncio.TimeoutError)


@given(code=st.integers(), message=st.text(), address=st.text())
def test_exceptions_built_from_any_arguments_agree(code: int, message: str, address: str) -> None:
    pairs: list[tuple[Exception, Exception]] = [
        (aio_errors.SMTPException(message), aiosmtplib.errors.SMTPException(message)),
        (
            aio_errors.SMTPConnectTimeoutError(message),
            aiosmtplib.errors.SMTPConnectTimeoutError(message),
        ),
        (
            aio_errors.SMTPConnectResponseError(code, message),
            aiosmtplib.errors.SMTPConnectResponseError(code, message),
        ),
        (
            aio_errors.SMTPSenderRefused(code, message, address),
            aiosmtplib.errors.SMTPSenderRefused(code, message, address),
        ),
        (
            aio_errors.SMTPRecipientRefused(code, message, address),
            aiosmtplib.errors.SMTPRecipientRefused(code, message, address),
        ),
    ]
    for ours, theirs in pairs:
        assert (str(ours), repr(ours), ours.args) == (str(theirs), repr(theirs), theirs.args)
        assert vars(ours) == vars(theirs)
    refused = [aio_errors.SMTPRecipientRefused(code, message, address)]
    their_refused = [aiosmtplib.errors.SMTPRecipientRefused(code, message, address)]
    ours_all = aio_errors.SMTPRecipientsRefused(refused)
    theirs_all = aiosmtplib.errors.SMTPRecipientsRefused(their_refused)
    assert (str(ours_all), repr(ours_all)) == (str(theirs_all), repr(theirs_all))


def test_the_outcome_unknown_error_carries_what_is_known() -> None:
    cause = TimeoutError("no reply to the end of data")
    error = aio_errors.SMTPOutcomeUnknownError(
        "no reply after the end of data", cause=cause, delivered=["a@x"], unknown=iter(["b@y"])
    )
    assert isinstance(error, aio_errors.SMTPException)
    assert not isinstance(error, (aio_errors.SMTPTimeoutError, ConnectionError, TimeoutError))
    assert (error.cause, error.delivered, error.unknown) == (cause, ("a@x",), ("b@y",))
    assert (error.message, error.args, str(error)) == (
        "no reply after the end of data",
        ("no reply after the end of data",),
        "no reply after the end of data",
    )
    again = pickle.loads(pickle.dumps(error))
    assert (again.message, again.delivered, again.unknown) == (error.message, ("a@x",), ("b@y",))
    assert repr(again.cause) == repr(cause)
    assert aio_errors.SMTPOutcomeUnknownError("m", cause).delivered == ()


def test_the_stage_timeout_is_a_timeout_that_names_its_stage() -> None:
    error = aio_errors.SMTPStageTimeoutError("no reply to DATA", stage="data-init")
    assert isinstance(error, aio_errors.SMTPTimeoutError)
    assert isinstance(error, asyncio.TimeoutError)
    assert (error.stage, str(error), error.args) == ("data-init", "no reply to DATA", error.args)
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), again.stage, again.message) == (type(error), "data-init", error.message)


# -- response, status, typing -------------------------------------------------------


@given(code=st.integers(), message=st.text())
def test_responses_render_and_compare_alike(code: int, message: str) -> None:
    ours = aio_response.SMTPResponse(code, message)
    theirs = aiosmtplib.response.SMTPResponse(code, message)
    assert (str(ours), repr(ours)) == (str(theirs), repr(theirs))
    assert equal(ours, theirs)
    assert equal(ours, (code, message))
    assert hash(ours) == hash(theirs)
    assert (ours.code, ours.message, ours[0], ours[1]) == (code, message, code, message)
    assert ours._asdict() == theirs._asdict()
    assert ours._fields == theirs._fields
    assert type(ours._replace(code=1)) is aio_response.SMTPResponse
    assert pickle.loads(pickle.dumps(ours)) == ours


@pytest.mark.parametrize("member", [m.name for m in aiosmtplib.typing.SMTPStatus])
def test_a_status_member_in_a_response_renders_alike(member: str) -> None:
    ours = aio_response.SMTPResponse(aio_typing.SMTPStatus[member], "x")
    theirs = aiosmtplib.response.SMTPResponse(aiosmtplib.typing.SMTPStatus[member], "x")
    assert (str(ours), repr(ours)) == (str(theirs), repr(theirs))
    assert equal(ours, theirs)
    assert f"{aio_typing.SMTPStatus[member]}" == f"{aiosmtplib.typing.SMTPStatus[member]}"
    assert str(aio_typing.SMTPStatus[member]) == str(aiosmtplib.typing.SMTPStatus[member])


def test_status_codes_are_the_same_unique_int_enum() -> None:
    assert aio_status.SMTPStatus is aio_typing.SMTPStatus
    assert issubclass(aio_typing.SMTPStatus, enum.IntEnum)
    assert [(m.name, int(m)) for m in aio_typing.SMTPStatus] == [
        (m.name, int(m)) for m in aiosmtplib.typing.SMTPStatus
    ]
    assert equal(aio_typing.SMTPStatus(250), aiosmtplib.typing.SMTPStatus(250))
    assert equal(aio_typing.SMTPStatus(250), 250)
    assert aio_typing._default is aio_typing.Default.token


# -- esmtp ------------------------------------------------------------------------

EHLO_WORDS = [
    "8BITMIME",
    "PIPELINING",
    "SIZE",
    "SIZE 35882577",
    "STARTTLS",
    "SMTPUTF8",
    "DSN",
    "ENHANCEDSTATUSCODES",
    "CHUNKING",
    "AUTH",
    "auth",
    "Auth",
    "AUTH=",
    "auth=",
    "AuTh=",
    "AUTH =",
    "LOGIN",
    "PLAIN",
    "CRAM-MD5",
    "XOAUTH2",
    "x-private",
    "\u0130",  # capital I with dot: lower() gives two characters
    "\u212a",  # Kelvin sign: folds to "k"
    "\u017f",  # long s: folds to "s" under re.IGNORECASE
    "\u00df",
]
EHLO_SPACES = [" ", "  ", "\t", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u2028"]
ehlo_lines = st.lists(
    st.one_of(st.sampled_from(EHLO_WORDS), st.sampled_from(EHLO_SPACES), st.text(max_size=6)),
    max_size=8,
).map("".join)
ehlo_texts = st.one_of(
    st.lists(ehlo_lines, max_size=10).map("\n".join),
    st.lists(ehlo_lines, max_size=10).map("\r\n".join),
    st.text(),
)


def parsed_alike(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Both parsers on one text; dict order is compared too."""
    ours_ext, ours_auth = aio_esmtp.parse_esmtp_extensions(text)
    theirs_ext, theirs_auth = aiosmtplib.esmtp.parse_esmtp_extensions(text)
    assert list(ours_ext.items()) == list(theirs_ext.items())
    assert ours_auth == theirs_auth
    return list(ours_ext.items()), ours_auth


@given(ehlo_texts)
@example("mail.example.org Hello\nAUTH=LOGIN PLAIN\nAUTH CRAM-MD5 LOGIN\nauth=xoauth2")
@example("greeting only")
@example("")
def test_ehlo_replies_parse_alike(text: str) -> None:
    parsed_alike(text)


def test_a_typical_ehlo_reply() -> None:
    text = (
        "mx.example.org at your service, [192.0.2.1]\n"
        "SIZE 35882577\n8BITMIME\nSTARTTLS\nENHANCEDSTATUSCODES\n"
        "PIPELINING\nAUTH LOGIN PLAIN XOAUTH2\nAUTH=LOGIN\nCHUNKING\nSMTPUTF8"
    )
    extensions, methods = parsed_alike(text)
    assert dict(extensions)["size"] == "35882577"
    assert dict(extensions)["auth"] == "LOGIN"  # the old-style line came last
    assert methods == ["login", "plain", "xoauth2", "login"]


def test_old_style_auth_prefix_is_case_folded_as_by_a_regex() -> None:
    # Ours compares ``line[:5].lower()`` where aiosmtplib uses re.IGNORECASE: they agree only
    # if no character folds to one of "auth=" under one rule and not the other.
    everything = "".join(map(chr, range(sys.maxunicode + 1)))
    for letter in "auth=":
        by_regex = set(re.findall(f"(?i){re.escape(letter)}", everything))
        by_lower = {c for c in everything if c.lower() == letter}
        assert by_regex == by_lower, letter
        for character in by_regex:
            parsed_alike(f"hi\n{'auth='.replace(letter, character)}LOGIN")


# -- email: addresses -------------------------------------------------------------

ADDRESS_PIECES = [
    "jo",
    "é",
    "@",
    "example.org",
    ".",
    " ",
    "\t",
    "\r",
    "\n",
    "\r\n",
    "\x00",
    "\x01",
    "\x7f",
    "\x85",
    "\xa0",
    "\u2028",
    "<",
    ">",
    '"',
    "\\",
    ",",
    ";",
    ":",
    "(",
    ")",
    "[",
    "]",
    "=?utf-8?q?J=C3=B6?=",
    "Jo Doe",
    "+tag",
    "'",
]
addresses = st.lists(
    st.one_of(st.sampled_from(ADDRESS_PIECES), st.text(max_size=3)), max_size=10
).map("".join)


@given(addresses)
@example('"\\\r"@a,b@c')  # a CR comes through on Python >= 3.13 (API.md, safety deviations)
@example("a\x00b@example.org")
@example('"a b"@example.org')
@example("Jo <jo@example.org>")
@example("a@b, c@d")
@example("")
def test_addresses_parse_and_quote_alike(address: str) -> None:
    same_outcome(
        lambda: aio_email.parse_address(address),
        lambda: aiosmtplib.email.parse_address(address),
    )
    same_outcome(
        lambda: aio_email.quote_address(address),
        lambda: aiosmtplib.email.quote_address(address),
    )
    same_outcome(
        lambda: aio_email.extract_addresses(address),
        lambda: aiosmtplib.email.extract_addresses(address),
    )


@given(addresses, st.sampled_from([None, "us-ascii", "utf-8", "iso-8859-1"]))
def test_encoded_header_objects_give_the_same_addresses(address: str, charset: str | None) -> None:
    try:
        header = email.header.Header(address, charset)
    except (UnicodeError, ValueError):
        assume(False)
    same_outcome(
        lambda: aio_email.extract_addresses(header),
        lambda: aiosmtplib.email.extract_addresses(header),
    )


ADDRESS_HEADERS = [
    "To",
    "Cc",
    "Bcc",
    "From",
    "Sender",
    "Resent-To",
    "Resent-Cc",
    "Resent-Bcc",
    "Resent-From",
    "Resent-Sender",
    "Resent-Date",
    "Subject",
]
header_values = st.one_of(
    addresses,
    st.lists(addresses, min_size=1, max_size=3).map(", ".join),
    st.sampled_from(["", "Jo <jo@example.org>", "a@b, Jo <c@d>", "undisclosed:;", "Mon, 1 Jan"]),
)
headers = st.lists(st.tuples(st.sampled_from(ADDRESS_HEADERS), header_values), max_size=6)
POLICIES = [email.policy.compat32, email.policy.default, email.policy.SMTP]


def compare_extraction(message: email.message.Message) -> None:
    same_outcome(
        lambda: aio_email.extract_sender(message),
        lambda: aiosmtplib.email.extract_sender(message),
    )
    same_outcome(
        lambda: aio_email.extract_recipients(message),
        lambda: aiosmtplib.email.extract_recipients(message),
    )


@given(headers, st.sampled_from(POLICIES))
def test_parsed_messages_give_the_same_sender_and_recipients(
    fields: list[tuple[str, str]], policy: email.policy.Policy
) -> None:
    raw = "".join(f"{name}: {value}\n" for name, value in fields) + "\nbody\n"
    compare_extraction(email.message_from_string(raw, policy=policy))


@given(headers, st.booleans(), st.sampled_from([None, "utf-8"]))
def test_built_messages_give_the_same_sender_and_recipients(
    fields: list[tuple[str, str]], as_list: bool, charset: str | None
) -> None:
    modern = email.message.EmailMessage()
    legacy = email.message.Message()
    for name, value in fields:
        # An address header assigned a list holds plain strings, not Address objects.
        listed = as_list and name not in ("Resent-Date", "Subject")
        modern_value: Any = [value] if listed else value
        legacy_value: Any = email.header.Header(value, charset) if charset else value
        # The stdlib refuses some values, and trips on others (3.10: AttributeError).
        with contextlib.suppress(Exception):
            modern[name] = modern_value
        with contextlib.suppress(Exception):
            legacy[name] = legacy_value
    compare_extraction(modern)
    compare_extraction(legacy)


def test_sender_and_recipients_of_ordinary_messages() -> None:
    message = email.message.EmailMessage()
    message["From"] = "Jo <jo@example.org>"
    message["Sender"] = "list@example.org"
    message["To"] = "a@example.org, B <b@example.org>"
    message["Cc"] = "c@example.org"
    message["Bcc"] = "hidden@example.org"
    assert aio_email.extract_sender(message) == "list@example.org"
    expected = ["a@example.org", "b@example.org", "c@example.org", "hidden@example.org"]
    assert aio_email.extract_recipients(message) == expected
    compare_extraction(message)
    message["Resent-Date"] = "Mon, 1 Jan 2024 00:00:00 +0000"
    message["Resent-From"] = "fwd@example.org"
    message["Resent-To"] = "new@example.org"
    assert aio_email.extract_sender(message) == "fwd@example.org"
    assert aio_email.extract_recipients(message) == ["new@example.org"]
    compare_extraction(message)
    message["Resent-Date"] = "Tue, 2 Jan 2024 00:00:00 +0000"
    with pytest.raises(ValueError, match="more than one"):
        aio_email.extract_sender(message)
    compare_extraction(message)


# -- email: flatten_message --------------------------------------------------------

BODY_LINES = ["hello", "From here", ".", "..dot", "é àü", "\u2603 snow", "x" * 120, "", "\t"]
bodies = st.lists(st.one_of(st.sampled_from(BODY_LINES), st.text(max_size=20)), max_size=8).map(
    "\n".join
)
subjects = st.one_of(st.sampled_from(["Hello", "Grüße", "a" * 100, ""]), st.text(max_size=30))
BOUNDARY = "==boundary-for-tests=="


@st.composite
def messages(draw: st.DrawFn) -> email.message.Message:
    kind = draw(st.sampled_from(["modern", "mime", "parsed", "multipart", "alternative"]))
    body, subject = draw(bodies), draw(subjects)
    message: email.message.Message
    try:
        if kind == "modern":
            modern = email.message.EmailMessage()
            cte = draw(st.sampled_from([None, "8bit", "7bit", "base64", "quoted-printable"]))
            modern.set_content(body, cte=cte)
            message = modern
        elif kind == "mime":
            message = MIMEText(body, "plain", draw(st.sampled_from([None, "utf-8", "latin-1"])))
        elif kind == "parsed":
            raw = draw(octets)
            text = b"Content-Type: text/plain\n\n" + body.encode("utf-8", "surrogatepass") + raw
            message = email.message_from_bytes(text, policy=draw(st.sampled_from(POLICIES)))
        elif kind == "multipart":
            multipart = MIMEMultipart("alternative", boundary=BOUNDARY)
            multipart.attach(MIMEText(body, "plain", "utf-8"))
            multipart.attach(MIMEText(f"<p>{body}</p>", "html", "utf-8"))
            message = multipart
        else:
            alternative = email.message.EmailMessage()
            alternative.set_content(body)
            alternative.add_alternative(f"<p>{body}</p>", subtype="html")
            alternative.set_boundary(BOUNDARY)
            message = alternative
        for name, value in draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["From", "To", "Bcc", "Resent-Bcc", "Subject", "X-Note"]),
                    st.one_of(subjects, addresses),
                ),
                max_size=5,
            )
        ):
            message[name] = value
        message["Subject"] = subject
    except Exception:  # the stdlib refuses (or trips on) some values
        assume(False)
    return message


@given(messages(), st.booleans(), st.sampled_from(["8bit", "7bit"]))
def test_messages_flatten_to_the_same_bytes(
    message: email.message.Message, utf8: bool, cte_type: str
) -> None:
    before = copy.deepcopy(message)
    ours_copy, theirs_copy = copy.deepcopy(message), copy.deepcopy(message)
    result = same_outcome(
        lambda: aio_email.flatten_message(ours_copy, utf8=utf8, cte_type=cte_type),
        lambda: aiosmtplib.email.flatten_message(theirs_copy, utf8=utf8, cte_type=cte_type),
    )
    if result[0] == "value":
        assert b"\nBcc:" not in b"\n" + result[1]
        assert b"\nResent-Bcc:" not in b"\n" + result[1]
    assert ours_copy.get_all("Bcc") == before.get_all("Bcc")


def test_flattening_keeps_the_callers_bcc() -> None:
    message = email.message.EmailMessage()
    message["From"] = "jo@example.org"
    message["To"] = "a@example.org"
    message["Bcc"] = "hidden@example.org"
    message.set_content("hello\n")
    flat = aio_email.flatten_message(message)
    assert flat == aiosmtplib.email.flatten_message(message)
    assert b"hidden" not in flat
    assert flat.endswith(b"\r\n\r\nhello\r\n")
    assert message["Bcc"] == "hidden@example.org"


def test_legacy_messages_keep_their_line_endings_and_escape_from() -> None:
    message = MIMEText("From here\nhello\n")
    flat = aio_email.flatten_message(message, utf8=True)
    assert flat == aiosmtplib.email.flatten_message(message, utf8=True)
    assert b"\r\n" not in flat
    assert b"\n>From here\n" in flat


def test_utf8_headers_stay_raw_only_under_smtputf8() -> None:
    message = email.message.EmailMessage()
    message["Subject"] = "Grüße"
    message.set_content("é\n", cte="8bit")
    for utf8 in (False, True):
        flat = aio_email.flatten_message(message, utf8=utf8)
        assert flat == aiosmtplib.email.flatten_message(message, utf8=utf8)
        assert ("Grüße".encode() in flat) == utf8
    seven = aio_email.flatten_message(message, cte_type="7bit")
    assert seven == aiosmtplib.email.flatten_message(message, cte_type="7bit")
    assert max(seven) < 0x80


# -- auth -------------------------------------------------------------------------

all_text = st.text(alphabet=st.characters(exclude_categories=()))
credentials = st.one_of(all_text, octets)
challenges = st.one_of(octets.map(base64.b64encode), octets, all_text)


@given(credentials, credentials, challenges)
@example("tim", "tanstaaftanstaaf", b"PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+")
@example("tim", "secret", "not base64!")
@example("tim", "secret", "Zm9v=")
@example("tim", "secret", "\u00e9")
@example("\ud800", "secret", "!")
def test_crammd5_answers_alike(
    username: str | bytes, password: str | bytes, challenge: str | bytes
) -> None:
    same_outcome(
        lambda: aio_auth.auth_crammd5_verify(username, password, challenge),
        lambda: aiosmtplib.auth.auth_crammd5_verify(username, password, challenge),
    )


@given(credentials, credentials)
def test_plain_login_and_xoauth2_encode_alike(username: str | bytes, secret: str | bytes) -> None:
    for name in ("auth_plain_encode", "auth_login_encode", "auth_xoauth2_encode"):
        ours, theirs = getattr(aio_auth, name), getattr(aiosmtplib.auth, name)
        same_outcome(
            functools.partial(ours, username, secret), functools.partial(theirs, username, secret)
        )


def test_auth_known_answers() -> None:
    # RFC 2195 §2, then values checked by decoding.
    challenge = base64.b64encode(b"<1896.697170952@postoffice.reston.mci.net>")
    rfc2195 = b"dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"
    assert aio_auth.auth_crammd5_verify("tim", "tanstaaftanstaaf", challenge) == rfc2195
    assert base64.b64decode(aio_auth.auth_plain_encode("tim", b"pw")) == b"\x00tim\x00pw"
    assert aio_auth.auth_login_encode("tim", "pw") == (b"dGlt", b"cHc=")
    token = base64.b64decode(aio_auth.auth_xoauth2_encode("me@example.org", "ya29.x"))
    assert token == b"user=me@example.org\x01auth=Bearer ya29.x\x01\x01"
    with pytest.raises(aio_errors.SMTPAuthenticationError) as caught:
        aio_auth.auth_crammd5_verify("tim", "pw", "a")
    assert int(caught.value.code) == int(aio_typing.SMTPStatus.auth_continue) == 334
