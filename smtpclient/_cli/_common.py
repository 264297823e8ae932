"""What the ``smtpclient`` command's modules share: exit statuses, stages, errors.

The exit statuses are the command's interface (``smtpclient --help`` lists
them); :class:`_Fail` and :class:`_Usage` end a run with one of them.
"""

from __future__ import annotations

from smtp_core import OutcomeUnknown

__all__ = [
    "EXIT_AUTH",
    "EXIT_CONNECTION",
    "EXIT_OK",
    "EXIT_PROTOCOL",
    "EXIT_RECIPIENT_REFUSED",
    "EXIT_TRANSACTION",
    "EXIT_USAGE",
    "QUIT_STAGES",
    "_Fail",
    "_Unknown",
    "_Usage",
    "_version",
]


EXIT_OK = 0  # every recipient took the message (probe, --raw: the session completed)
EXIT_RECIPIENT_REFUSED = 1  # at least one recipient was refused
EXIT_USAGE = 2  # bad options (argparse uses 2 as well)
EXIT_CONNECTION = 3  # connection, TLS, timeout, greeting refused, server went away
EXIT_AUTH = 4  # authentication failed or was impossible
EXIT_TRANSACTION = 5  # EHLO, MAIL, DATA or the message refused
EXIT_PROTOCOL = 6  # the server broke the protocol

#: The points ``--quit-after`` stops at, in session order.
QUIT_STAGES = ("connect", "greeting", "ehlo", "tls", "auth", "mail", "rcpt", "data")


# -- errors ------------------------------------------------------------------------------


class _Fail(Exception):
    """Ends the session with an exit code and a message for stderr.

    ``polite``: the connection is still in step with the server, so QUIT may
    be sent before closing.
    """

    def __init__(self, code: int, message: str, *, polite: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.polite = polite


class _Unknown(_Fail):
    """The end of the message was sent and no verdict came: it may have been delivered.

    ``outcome`` is the engine's :class:`~smtp_core.OutcomeUnknown`; the
    connection is gone.
    """

    def __init__(self, message: str, outcome: OutcomeUnknown) -> None:
        super().__init__(EXIT_CONNECTION, message)
        self.outcome = outcome


class _Usage(Exception):
    """A usage error found after parsing (exit status 2)."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("smtpclient")
    except PackageNotFoundError:
        return "unknown"
