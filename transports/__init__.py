"""transports: the drivers that move bytes between ``smtp_core`` and real I/O.

Each driver runs the engine's procedures and holds no protocol knowledge.
``transports.sync`` is the blocking-socket driver; :class:`AsyncDriver` is the
one asynchronous pump, which runs over any :class:`AsyncByteStream`: asyncio's
(``transports.asyncio``, standard library only), trio's (``transports.trio``,
extra ``trio``), anyio's (``transports.anyio``, extra ``anyio``), or a
caller's own, with TLS from ``transports.tls`` if it has none.  (PyPI has an
unrelated distribution named ``transports``; this package is installed by the
``smtpclient`` distribution.)
"""

from smtp_core import Stage, StageTimeout, Timeouts

from ._pump import AsyncDriver, DriverClosed, default_ssl_context, open_driver
from ._stream import AsyncByteStream
from .sync import SyncDriver

__all__ = [
    "AsyncByteStream",
    "AsyncDriver",
    "DriverClosed",
    "Stage",
    "StageTimeout",
    "SyncDriver",
    "Timeouts",
    "default_ssl_context",
    "open_driver",
]
