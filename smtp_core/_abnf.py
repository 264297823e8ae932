"""The RFC 5321 grammar the engine checks, kept beside the RFC text it encodes.

It also holds the RFC 3463 enhanced status code and :func:`enhanced_status`,
which reads one: the reply events need it, and this module imports nothing
of the engine's, so they can.

Each regex is built from named parts, with the ABNF it transcribes quoted
above it.  Leniencies are listed where they are granted, with their reason.
"""

from __future__ import annotations

import re

__all__ = [
    "ADDRESS_LITERAL",
    "DOMAIN",
    "ESMTP_PARAM",
    "FORBIDDEN_CHARS",
    "MAILBOX",
    "REPLY_LINE",
    "VERB",
    "enhanced_status",
]

# Characters no argument may ever contain, in any mode: CR and LF would end the
# command early and let the caller's data become a second command (command
# injection, CPython gh-87264 / bpo-43124); NUL is refused by RFC 5321 §4.1.1
# ("NUL characters are not permitted") and truncates strings in C servers.
FORBIDDEN_CHARS = re.compile(r"[\r\n\x00]")

# RFC 5321 §4.1.2:
#   Let-dig    = ALPHA / DIGIT
#   Ldh-str    = *( ALPHA / DIGIT / "-" ) Let-dig
#   sub-domain = Let-dig [Ldh-str]
#   Domain     = sub-domain *("." sub-domain)
# RFC 6531 §3.3 lets a sub-domain be a U-label under SMTPUTF8; any non-ASCII
# character is admitted here and the SMTPUTF8 requirement is checked by the
# connection, which knows what the server advertised.
_LET_DIG = r"[A-Za-z0-9\u0080-\U0010ffff]"
_SUB_DOMAIN = rf"{_LET_DIG}(?:[A-Za-z0-9\u0080-\U0010ffff-]*{_LET_DIG})?"
_DOMAIN = rf"{_SUB_DOMAIN}(?:\.{_SUB_DOMAIN})*"

#   IPv4-address-literal    = Snum 3("."  Snum)
#   IPv6-address-literal    = "IPv6:" IPv6-addr
#   General-address-literal = Standardized-tag ":" 1*dcontent
#   dcontent                = %d33-90 / %d94-126
# The IPv6 forms are checked loosely (hex digits, colons and dots): the exact
# IPv6 grammar adds nothing to safety, and the server has the last word.
_SNUM = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = rf"{_SNUM}(?:\.{_SNUM}){{3}}"
_IPV6 = r"IPv6:[0-9A-Fa-f:.]{2,45}"
_GENERAL = r"[A-Za-z0-9-]*[A-Za-z0-9]:[\x21-\x5a\x5e-\x7e]+"
_ADDRESS_LITERAL = rf"\[(?:{_IPV4}|{_IPV6}|{_GENERAL})\]"

#   Atom         = 1*atext            (atext from RFC 5322 §3.2.3)
#   Dot-string   = Atom *("."  Atom)
#   Quoted-string = DQUOTE *QcontentSMTP DQUOTE
#   QcontentSMTP = qtextSMTP / quoted-pairSMTP
#   quoted-pairSMTP = %d92 %d32-126
#   qtextSMTP    = %d32-33 / %d35-91 / %d93-126
# RFC 6531 §3.3 extends atext and qtextSMTP with UTF8-non-ascii.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\U0010ffff-]"
_DOT_STRING = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED_STRING = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010ffff]|\\[\x20-\x7e])*"'
_LOCAL_PART = rf"(?:{_DOT_STRING}|{_QUOTED_STRING})"

#   Mailbox = Local-part "@" ( Domain / address-literal )
MAILBOX = re.compile(rf"(?P<local>{_LOCAL_PART})@(?P<domain>{_DOMAIN}|{_ADDRESS_LITERAL})")
DOMAIN = re.compile(_DOMAIN)
ADDRESS_LITERAL = re.compile(_ADDRESS_LITERAL)

#   esmtp-param   = esmtp-keyword ["=" esmtp-value]
#   esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
#   esmtp-value   = 1*(%d33-60 / %d62-126)
# RFC 6531 §3.3 admits UTF-8 in esmtp-value under SMTPUTF8.
ESMTP_PARAM = re.compile(
    r"(?P<keyword>[A-Za-z0-9][A-Za-z0-9-]*)(?:=(?P<value>[\x21-\x3c\x3e-\x7e\u0080-\U0010ffff]+))?"
)

# A command verb for the generic command: RFC 5321 §4.1.1 verbs are letters;
# private extensions are "X" followed by letters (§4.1.5).  Digits and "-" are
# admitted for extensions such as "X-EXPS".
VERB = re.compile(r"[A-Za-z][A-Za-z0-9-]*")

# RFC 5321 §4.2:
#   Reply-line = *( Reply-code "-" [ textstring ] CRLF )
#                Reply-code [ SP textstring ] CRLF
#   Reply-code = %x32-35 %x30-35 %x30-39
#   textstring = 1*(%d09 / %d32-126)
# The second digit is widened to 0-9 (RFC 5321 §4.2.1: a client judges a reply
# by its first digit; servers send 599 and 499).
# The CRLF has been removed before this regex runs.  textstring is widened to
# any octet from 0x80 up (RFC 6531 lets an SMTPUTF8 server send UTF-8 in
# replies, and QQ Mail sends GBK); the text is kept as bytes, not decoded, and
# the reader refuses control characters other than HT.  "-" followed by no
# text is allowed by the ABNF ([ textstring ]) and sent by aiosmtpd.
REPLY_LINE = re.compile(rb"([2-5][0-9][0-9])(?:([ -])(.*))?", re.DOTALL)

# RFC 3463 §2: status-code = class "." subject "." detail, class 2/4/5,
# subject 1*3digit, detail 1*3digit; RFC 2034 puts it first, then SP.
_ENHANCED = re.compile(rb"([245])\.([0-9]{1,3})\.([0-9]{1,3})(?: |\Z)")


def enhanced_status(code: int, text: bytes) -> tuple[int, int, int] | None:
    """The RFC 3463 status code that ``text`` (a reply's first line) starts with.

    ``None`` when it has none, or when its class disagrees with the first digit
    of ``code`` (RFC 3463 §2): a text that merely starts with digits ("2.0 is
    out") is not a status code.
    """
    match = _ENHANCED.match(text)
    if match is None or int(match[1]) != code // 100:
        return None
    return int(match[1]), int(match[2]), int(match[3])
