"""EHLO reply parsing as aiosmtplib does it: keywords to parameters, plus the AUTH methods.

This is the imitated API's view of an EHLO reply, kept loose on purpose so that
``SMTP.esmtp_extensions`` and ``SMTP.server_auth_methods`` hold what aiosmtplib users expect.
The engine's own typed view (:mod:`smtp_core`) is stricter and decides the protocol; this one
only reports.
"""

from __future__ import annotations

__all__ = ["parse_esmtp_extensions"]

# Some servers advertise their mechanisms the pre-RFC 2554 way, "AUTH=LOGIN PLAIN", alone or
# beside the standard "AUTH LOGIN PLAIN" line (RFC 4954 §4 notes the practice).
_OLD_STYLE_AUTH_PREFIX = "auth="


def parse_esmtp_extensions(message: str) -> tuple[dict[str, str], list[str]]:
    """Read the extensions and AUTH methods out of the text of an EHLO reply.

    ``message`` is the reply text as :class:`~smtpclient.aio.response.SMTPResponse` holds it:
    the lines without their codes, joined with ``"\\n"``.  The first line is the server's
    greeting and is skipped.  Each other line, stripped of surrounding whitespace, is a keyword
    and, after the first space, its parameters; blank lines are ignored.

    Args:
        message: the text of the reply to EHLO.

    Returns:
        ``(extensions, auth_methods)``: ``extensions`` maps each keyword, lower-cased, to its
        parameter text as sent (``""`` when there is none), the last line winning for a keyword
        given twice; ``auth_methods`` lists the lower-cased words of every ``AUTH`` line, in
        order, duplicates kept.  An old-style ``AUTH=...`` line counts as an ``auth`` keyword
        too.  Nothing is raised; the input is not checked against any grammar.
    """
    extensions: dict[str, str] = {}
    auth_methods: list[str] = []
    lines = message.split("\n")
    for raw_line in lines[1:]:
        line = raw_line.strip()
        if not line:
            continue
        if line[: len(_OLD_STYLE_AUTH_PREFIX)].lower() == _OLD_STYLE_AUTH_PREFIX:
            keyword, parameters = "auth", line[len(_OLD_STYLE_AUTH_PREFIX) :]
        else:
            word, _, parameters = line.partition(" ")
            keyword = word.lower()
        extensions[keyword] = parameters
        if keyword == "auth":
            auth_methods += [method.lower() for method in parameters.split()]
    return extensions, auth_methods
