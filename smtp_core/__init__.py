"""smtp_core: a sans-I/O SMTP, ESMTP and LMTP client engine.

Feed it the server's bytes with :meth:`Connection.receive_data`, take events
with :meth:`Connection.next_event`, and turn commands into bytes with
:meth:`Connection.send`.  It never touches a socket, a clock or a thread; the
drivers in ``transports`` do the I/O, running the shared procedures in
:mod:`smtp_core.procedures`-style generators exported here.
"""

from . import _procedures as procedures
from ._commands import (
    MAX_COMMAND_LINE,
    BaseCommand,
    Bdat,
    Command,
    Content,
    Data,
    Ehlo,
    EndOfContent,
    Expn,
    Helo,
    Help,
    Lhlo,
    Mail,
    Noop,
    Quit,
    Rcpt,
    Rset,
    StartTLS,
    Vrfy,
)
from ._connection import Connection, TLSPolicy
from ._data import DataEncoder
from ._errors import (
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    ReplyError,
    ServerDisconnected,
)
from ._events import NEED_DATA, ConnectionClosed, Event, Greeting, NeedData, Reply
from ._extensions import Extensions
from ._procedures import (
    READ,
    READ_MORE,
    UPGRADE_TLS,
    IORequest,
    Procedure,
    Read,
    RecipientResult,
    TransactionResult,
    UpgradeTLS,
    Write,
)
from ._replies import MAX_REPLY_LINE_LENGTH, MAX_REPLY_LINES
from ._state import TRANSITIONS, Input, Outcome, State

__all__ = [
    "MAX_COMMAND_LINE",
    "MAX_REPLY_LINES",
    "MAX_REPLY_LINE_LENGTH",
    "NEED_DATA",
    "READ",
    "READ_MORE",
    "TRANSITIONS",
    "UPGRADE_TLS",
    "BaseCommand",
    "Bdat",
    "Command",
    "Connection",
    "ConnectionClosed",
    "Content",
    "Data",
    "DataEncoder",
    "Ehlo",
    "EndOfContent",
    "Event",
    "Expn",
    "Extensions",
    "Greeting",
    "Helo",
    "Help",
    "IORequest",
    "Input",
    "Lhlo",
    "LocalProtocolError",
    "Mail",
    "NeedData",
    "Noop",
    "Outcome",
    "Procedure",
    "ProtocolError",
    "Quit",
    "Rcpt",
    "Read",
    "RecipientResult",
    "RemoteProtocolError",
    "Reply",
    "ReplyError",
    "Rset",
    "ServerDisconnected",
    "StartTLS",
    "State",
    "TLSPolicy",
    "TransactionResult",
    "UpgradeTLS",
    "Vrfy",
    "Write",
    "procedures",
]
