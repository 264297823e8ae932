"""The fuzzer's own checks on the server's replies, beyond the engine's.

A permissive connection lets the server judge: it follows whatever the server
answers and raises only on what no reading of SMTP allows (bad grammar,
replies nobody asked for).  That is the right face for a client, and too
lenient for a fuzzer: a ``250`` to ``DATA`` moves nothing and raises nothing.
The rules below name the replies RFC 5321 rules out, as a table.

The state-dependent rules (``RCPT`` before any ``MAIL``, a second ``MAIL``,
``AUTH`` inside a transaction)
are trusted only while the engine knows the server's state: once raw bytes
drew a positive reply, the fuzzer no longer does, and turns them off for the
rest of that session.
"""

from __future__ import annotations

from typing import Final

from smtp_core import State

__all__ = ["KNOWN_VERBS", "check_reply", "coverage_verb"]

#: Verbs kept by name in the coverage map; any other becomes ``OTHER`` so that
#: mutated verbs cannot grow it without bound.
KNOWN_VERBS: Final = frozenset(
    {
        "EHLO", "HELO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "VRFY", "EXPN", "HELP",
        "QUIT", "AUTH", "STARTTLS", "ETRN", "BDAT", "",
        "<end of data>", "<raw>", "<tail>", "<auth response>",
    }
)  # fmt: skip

# RFC 5321 §4.3.2 lists the replies each command may draw.  None of these
# has a 3yz among them ("I: 354" is DATA's alone; AUTH's 334 is RFC 4954's).
_NO_INTERMEDIATE: Final = frozenset({"EHLO", "HELO", "MAIL", "RCPT", "RSET", "NOOP", "QUIT"})
# §3.3: RCPT needs a transaction; §4.1.1.2 / §3.3 "MAIL ... begins a mail
# transaction": a second one inside a transaction is out of sequence (503).
_IN_TRANSACTION: Final = frozenset({State.MAIL, State.RCPT})


def coverage_verb(verb: str) -> str:
    """``verb`` if it is one the coverage map keeps by name, else ``"OTHER"``."""
    return verb if verb in KNOWN_VERBS else "OTHER"


def check_reply(verb: str, state: State, code: int, *, state_known: bool) -> str | None:
    """Return why ``code`` breaks RFC 5321 as a reply to ``verb`` in ``state``, or ``None``.

    Args:
        verb: the upper-case verb of the command line the reply answers.
        state: the engine's state when the reply arrived (before it moves).
        code: the reply code.
        state_known: False once raw bytes drew a positive reply in the
            session; the state-dependent rules are then skipped.
    """
    kind = code // 100
    if kind == 3 and verb in _NO_INTERMEDIATE:
        return f"{code} (intermediate) reply to {verb}: RFC 5321 §4.3.2 allows none"
    if kind == 2 and verb == "DATA":
        return f"{code} reply to DATA: RFC 5321 §4.3.2 allows only 354 or an error"
    if verb == "AUTH" and kind in (2, 3) and state_known and state in _IN_TRANSACTION:
        # RFC 4954 §4: "An AUTH command issued during a mail transaction MUST
        # be rejected with a 503 reply."
        return f"{code} reply to AUTH during a mail transaction: RFC 4954 §4 requires 503"
    if kind == 2 and state_known:
        if verb == "RCPT" and state not in _IN_TRANSACTION:
            return f"{code} reply to RCPT in state {state.name}: no MAIL was accepted (§3.3)"
        if verb == "MAIL" and state in _IN_TRANSACTION:
            return f"{code} reply to a second MAIL inside a transaction (state {state.name})"
    return None
