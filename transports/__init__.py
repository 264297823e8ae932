"""transports: the drivers that move bytes between ``smtp_core`` and real I/O.

Each driver runs the engine's procedures and holds no protocol knowledge.
``transports.sync`` is the blocking-socket driver.  (PyPI has an unrelated
distribution named ``transports``; this package is installed by the
``smtpclient`` distribution.)
"""

from .sync import SyncDriver

__all__ = ["SyncDriver"]
