"""smtplib and smtpclient, side by side: the differential harness (``tests/differential``).

The same scripted-server conversation runs twice, through the standard
library's ``smtplib`` and through ``smtpclient``; return values, exceptions
(type, ``smtp_code``, ``smtp_error``, ``recipients``, ``sender``), the client's
state after each call and the bytes the server received must agree, except
where a named rule of ``tests/differential/deviations.py`` (one per row of
README's "Differences from smtplib") explains the difference.

Hypothesis draws the conversations: ci runs 700 conversations, dev 1500
(both derandomized: the same ones every run, so the gate never depends on a
draw), deep 30000 drawn afresh (and the harness's own determinism check, each library against
itself: ci 60, dev 200, deep 2000 conversations per library).  The
example-based tests below pin single conversations: the differences the
harness has found (each fixed in the facade, or explained by a rule) and one
conversation per deviation rule (the rule must recognise its own difference).
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings

from tests.differential.compare import Outcome, check, compare, run
from tests.differential.deviations import DEVIATIONS
from tests.differential.scenarios import Conversation, Script, Step, conversations
from tests.differential.server import (
    AUTH_RESPONSE,
    END_OF_DATA,
    Answer,
    Policy,
    close_silently,
    reply,
)

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "dev")
CONVERSATIONS = {"ci": 700, "dev": 1500, "deep": 30_000}.get(PROFILE, 1500)
SELF_CHECKS = {"ci": 60, "dev": 200, "deep": 2000}.get(PROFILE, 200)
#: The gate (README's test command, CI) draws the same conversations every run,
#: so that it never passes or fails on a draw; "deep" explores afresh each time.
DERANDOMIZE = PROFILE != "deep"
README = Path(__file__).resolve().parent.parent / "README.md"
#: No explain phase: the failure report already shows both transcripts, and
#: explaining costs as much as a third of the shrinking.
PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)

CLOSE_421 = reply(421, "4.3.0 Service shutting down", close=True)
MESSAGE = "Subject: hi\n\nhello\n"
ALICE, BOB, CAROL = "alice@client.test", "bob@x.test", "carol@x.test"


def conversation(policy: Policy, *steps: Step, construct: bool = True) -> Conversation:
    return Conversation(policy, Script(steps, construct=construct))


def answers(**by_verb: tuple[Answer, ...]) -> tuple[tuple[str, tuple[Answer, ...]], ...]:
    """``answers(MAIL=(...,))``; ``END`` stands for "." and ``RESPONSE`` for AUTH-RESPONSE."""
    names = {"END": END_OF_DATA, "RESPONSE": AUTH_RESPONSE}
    return tuple((names.get(verb, verb), replies) for verb, replies in by_verb.items())


def sendmail(*to: str, msg: str | bytes = MESSAGE, sender: str = ALICE) -> Step:
    return Step("sendmail", (sender, list(to), msg, [], []))


def agree(conv: Conversation) -> None:
    verdict = check(conv)
    if not verdict.ok:
        pytest.fail(verdict.report(), pytrace=False)


# -- the property ---------------------------------------------------------------------------


@settings(
    max_examples=CONVERSATIONS,
    phases=PHASES,
    derandomize=DERANDOMIZE,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(conversations())
def test_smtpclient_behaves_like_smtplib(conv: Conversation) -> None:
    agree(conv)


@pytest.mark.parametrize("library", ["smtplib", "smtpclient"])
@settings(
    max_examples=SELF_CHECKS,
    phases=PHASES,
    derandomize=DERANDOMIZE,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(conv=conversations())
def test_the_harness_is_deterministic(library: str, conv: Conversation) -> None:
    # Each library against itself, with no rule: any difference is
    # nondeterminism (a race in the server, an input answered by timing).
    # SCRAM's client nonce is random by design: smtpclient's AUTH SCRAM lines differ.
    assume(library == "smtplib" or not any("SCRAM" in e for e in conv.policy.extensions))
    verdict = check(conv, first=library, second=library)
    if not verdict.ok:
        pytest.fail(verdict.report(), pytrace=False)


# -- differences the harness found: each now agrees, or is a documented deviation -------


PIPELINING = ("PIPELINING",)


def test_a_421_to_a_later_pipelined_rcpt_raises() -> None:
    policy = Policy(extensions=PIPELINING, answers=answers(RCPT=(reply(250, "ok"), CLOSE_421)))
    agree(conversation(policy, sendmail(BOB, CAROL), Step("noop"), Step("quit")))


def test_starttls_refused_with_454_raises() -> None:
    policy = Policy(extensions=("STARTTLS",), answers=answers(STARTTLS=(reply(454, "4.7.0 no"),)))
    agree(conversation(policy, Step("starttls"), Step("noop")))


def test_starttls_not_offered() -> None:
    agree(conversation(Policy(), Step("starttls"), Step("noop")))


@pytest.mark.parametrize(
    "call",
    [("MAIL FROM: <x@y.test>", ""), ("HELP RCPT", ""), ("", ""), ("AUTH", "XOAUTH2 dG9rZW4=")],
    ids=["mail-line", "help-rcpt", "empty", "auth-xoauth2"],
)
def test_docmd_sends_the_line_as_given(call: tuple[str, str]) -> None:
    agree(conversation(Policy(), Step("docmd", call), Step("noop")))


def test_send_then_getreply_keeps_the_session() -> None:
    agree(conversation(Policy(), Step("send+getreply", (b"NOOP\r\n",)), Step("noop")))


def test_send_then_getreply_after_the_server_closed() -> None:
    policy = Policy(answers=answers(NOOP=(close_silently(),)))
    agree(conversation(policy, Step("noop"), Step("send+getreply", (b"NOOP\r\n",)), Step("noop")))


def test_login_with_an_empty_password() -> None:
    policy = Policy(extensions=("AUTH LOGIN",))
    agree(conversation(policy, Step("login", ("user", "")), Step("noop")))


@pytest.mark.parametrize("code", [599, 499])
def test_reply_codes_smtplib_accepts(code: int) -> None:
    policy = Policy(answers=answers(NOOP=(reply(code, "odd"),)))
    agree(conversation(policy, Step("noop"), Step("noop")))


@pytest.mark.parametrize(
    "verb", ["MAIL", "RCPT", "END"], ids=["mail-252", "rcpt-252", "end-of-data-252"]
)
@pytest.mark.parametrize("extensions", [(), PIPELINING], ids=["one-by-one", "pipelined"])
def test_a_positive_reply_other_than_250_in_sendmail(
    verb: str, extensions: tuple[str, ...]
) -> None:
    # smtplib's sendmail wants 250 from MAIL and the end of data, 250 or 251 from RCPT.
    policy = Policy(extensions=extensions, answers=answers(**{verb: (reply(252, "odd"),)}))
    agree(conversation(policy, sendmail(BOB), Step("noop")))


def test_starttls_answered_250() -> None:
    policy = Policy(extensions=("STARTTLS",), answers=answers(STARTTLS=(reply(250, "hm"),)))
    agree(conversation(policy, Step("starttls"), Step("noop")))


def test_a_421_greeting() -> None:
    agree(conversation(Policy(greeting=CLOSE_421), Step("noop"), construct=False))


def test_a_421_to_ehlo_then_helo() -> None:
    policy = Policy(answers=answers(EHLO=(CLOSE_421,)))
    agree(conversation(policy, sendmail(BOB)))


def test_a_421_to_the_first_auth_mechanism() -> None:
    policy = Policy(extensions=("AUTH CRAM-MD5 PLAIN",), answers=answers(RESPONSE=(CLOSE_421,)))
    agree(conversation(policy, Step("login", ("user", "secret"))))


def test_quit_after_a_421() -> None:
    policy = Policy(answers=answers(NOOP=(CLOSE_421,)))
    agree(conversation(policy, Step("noop"), Step("quit")))


def test_commands_out_of_order_get_the_servers_503() -> None:
    agree(
        conversation(
            Policy(),
            Step("ehlo"),
            Step("rcpt", (BOB,)),
            Step("data", (MESSAGE,)),
            Step("mail", (ALICE, [])),
            Step("mail", (ALICE, [])),
        )
    )


def test_a_refused_pipelined_mail_is_followed_by_rset() -> None:
    policy = Policy(extensions=PIPELINING, answers=answers(MAIL=(reply(550, "5.7.1 no"),)))
    agree(conversation(policy, sendmail(BOB), Step("noop")))


def test_a_refused_pipelined_end_of_data_is_followed_by_rset() -> None:
    policy = Policy(extensions=PIPELINING, answers=answers(END=(reply(552, "5.3.4 too big"),)))
    agree(conversation(policy, sendmail(BOB), Step("noop")))


@pytest.mark.parametrize("msg", ["", b""], ids=["str", "bytes"])
def test_an_empty_message(msg: str | bytes) -> None:
    agree(conversation(Policy(), sendmail(BOB, msg=msg)))


@pytest.mark.parametrize("extensions", [(), PIPELINING], ids=["one-by-one", "pipelined"])
def test_a_421_to_data_leaves_the_socket_as_smtplib_does(extensions: tuple[str, ...]) -> None:
    policy = Policy(extensions=extensions, answers=answers(DATA=(CLOSE_421,)))
    agree(conversation(policy, sendmail(BOB), Step("noop")))


def test_a_non_ascii_later_recipient() -> None:
    agree(conversation(Policy(extensions=PIPELINING), sendmail(BOB, "jürgen@x.test")))


def test_a_non_ascii_address_on_a_closed_session() -> None:
    policy = Policy(answers=answers(NOOP=(close_silently(),)))
    agree(conversation(policy, Step("noop"), Step("rcpt", ("jürgen@x.test",))))


def test_a_pipelined_transaction_after_a_refused_rset() -> None:
    # RSET refused leaves the by-hand transaction open; the next MAIL is
    # refused as nested, and smtplib stops there.
    policy = Policy(extensions=PIPELINING, rset=reply(500, "5.5.1 no"))
    steps = (Step("ehlo"), Step("mail", (ALICE, [])), Step("rset"), sendmail(BOB))
    agree(conversation(policy, *steps))


# -- each deviation rule recognises its own difference -------------------------------------

RULE_EXAMPLES: dict[str, Conversation] = {
    "BARE_LF": conversation(Policy(), sendmail(BOB, msg=b"Subject: x\r\n\r\nbare\nLF\r\n.dot\r\n")),
    "PIPELINING": conversation(
        Policy(extensions=PIPELINING, answers=answers(RCPT=(reply(550, "5.1.1 no user"),))),
        sendmail(BOB),
        Step("noop"),
    ),
    "NUL_REFUSED": conversation(Policy(), Step("ehlo"), Step("mail", ("a\0b@client.test", []))),
    "REPLY_LIMITS": conversation(
        Policy(answers=answers(NOOP=(Answer((b"250 " + b"x" * 3000,)),))), Step("noop")
    ),
    "MALFORMED_REPLY": conversation(
        Policy(answers=answers(NOOP=(Answer((b"abc what",)),))), Step("noop"), Step("noop")
    ),
    "SURPLUS_REPLY": conversation(
        Policy(answers=answers(NOOP=(Answer((b"250 ok",), surplus=(b"250 again",)),))),
        Step("noop"),
        Step("noop"),
    ),
    "LMTP_ALL_REPLIES": conversation(
        Policy(lmtp=True, answers=answers(END=(reply(250, "ok"), reply(452, "4.2.2 full")))),
        sendmail(BOB, CAROL),
        Step("noop"),
    ),
    "AUTH_UTF8_SASLPREP": conversation(
        Policy(extensions=("AUTH PLAIN",)), Step("login", ("jürgen", "pässwörd"))
    ),
    "SCRAM_PREFERRED": conversation(
        Policy(extensions=("AUTH SCRAM-SHA-256 PLAIN",)), Step("login", ("user", "secret"))
    ),
    "FIRST_DIGIT": conversation(
        Policy(answers=answers(RCPT=(reply(252, "2.1.5 will try"),))), sendmail(BOB)
    ),
    "CLOSE_ON_421": conversation(
        Policy(answers=answers(NOOP=(CLOSE_421,))), Step("noop"), Step("noop"), Step("quit")
    ),
    "STARTTLS_NOT_220": conversation(
        Policy(extensions=("STARTTLS",), answers=answers(STARTTLS=(reply(250, "go"),))),
        Step("starttls"),
    ),
    "LINE_LENGTH": conversation(Policy(), Step("docmd", ("NOOP", "x" * 3000)), Step("noop")),
    "AUTH_BAD_CHALLENGE": conversation(
        Policy(extensions=("AUTH LOGIN",), answers=answers(AUTH=(reply(334, "!!!notbase64"),))),
        Step("login", ("user", "secret")),
        Step("noop"),
    ),
}


@pytest.mark.parametrize("rule", sorted(RULE_EXAMPLES))
def test_each_rule_explains_its_own_difference(rule: str) -> None:
    verdict = check(RULE_EXAMPLES[rule])
    if not verdict.ok:
        pytest.fail(verdict.report(), pytrace=False)
    if rule not in verdict.rules:
        # No difference at all: README documents a deviation the code no longer has.
        pytest.fail(f"{rule}: README documents it, the facade does not do it\n{verdict.report()}")


def test_no_rule_explains_a_difference_in_the_outcome() -> None:
    # The two runs of smtplib agree; change what one step returned, and no
    # rule may explain it away.
    conv = RULE_EXAMPLES["PIPELINING"]
    std = run("smtplib", conv)
    steps = list(std.steps)
    steps[1] = replace(steps[1], outcome=Outcome.returned({}))
    verdict = compare(conv, std, replace(std, steps=tuple(steps)))
    assert not verdict.ok
    assert verdict.unexplained is not None and verdict.unexplained.aspects == ("outcome",)


def test_one_rule_per_readme_row() -> None:
    text = README.read_text(encoding="utf-8")
    table = text.split("## Differences from smtplib", 1)[1].split("\n\n")[2]
    rows = [line for line in table.splitlines()[2:] if line.startswith("|")]
    for_rows = [r for r in DEVIATIONS.values() if re.search(r"README row", r.__doc__ or "")]
    # TLS_VERIFY and TIMEOUT stand for rows the harness cannot exercise; every
    # other rule names the README row it stands for in its docstring.
    assert len(for_rows) == len(rows) + 1  # the credentials row has two rules (UTF-8, SCRAM)
    for rule in DEVIATIONS.values():
        assert rule.__doc__ and rule.__doc__.startswith(rule.name + " -- README"), rule.name


def test_the_server_can_close_without_a_word() -> None:
    policy = Policy(answers=answers(NOOP=(close_silently(),)))
    agree(conversation(policy, Step("noop"), Step("noop"), construct=False))
