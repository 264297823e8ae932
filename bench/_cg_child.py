"""The sessions callgrind counts: ``_cg_child.py CLIENT HOST PORT N``.

After the imports and one warm-up session (one message: lazy imports, regular
expression caches, first-call costs; ``BENCH_WARMUPS=K`` for K of them), two
sessions run between markers:

1. connect, EHLO, QUIT (no message): the fixed cost of a session;
2. connect, EHLO, N small messages to one recipient, QUIT.

The markers are calls of C functions nothing else here calls: ``getppid``
before the first session (``--zero-before=getppid``: counting starts there)
and ``getpgrp`` after each (``--dump-before=getpgrp``: one dump per session).
So the imports, the interpreter's start and exit, and any recompilation of a
source file edited meanwhile are not counted.
"""

from __future__ import annotations

import functools
import gc
import os
import smtplib
import sys
from collections.abc import Callable

import _clients
import _common

import smtpclient._smtplib

#: Set by ``callgrind.py --what-if-memo-addresses``: ``quoteaddr`` memoised in
#: both smtplib and the facade, so address parsing is free after the warm-up
#: (a what-if, to see the cost of everything else).
MEMO_ENV = "BENCH_WHAT_IF_MEMO_ADDRESSES"
#: Set by ``callgrind.py --warm-ups K``: K warm-up sessions instead of one.  The
#: first counted session after one warm-up still pays CPython's one-time
#: specialisation of every bytecode it runs (on its second execution); after
#: several, the counts are the steady state of a long-running program.
WARMUPS_ENV = "BENCH_WARMUPS"


def main() -> None:
    client, host, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if os.environ.get(MEMO_ENV):
        for module in (smtplib, smtpclient._smtplib):
            module.quoteaddr = functools.lru_cache(maxsize=None)(module.quoteaddr)  # type: ignore[attr-defined]
    address = (host, port)
    message = _common.small_message()

    def prepare(n: int) -> Callable[[], None]:
        return _clients.prepare_send(
            client,
            address,
            sender=_common.SENDER,
            recipients=[_common.RECIPIENT],
            message=message,
            count=n,
        )

    for _ in range(int(os.environ.get(WARMUPS_ENV, "1"))):
        prepare(1)()  # warm-up
    empty, full = prepare(0), prepare(count)
    gc.collect()
    os.getppid()  # marker: callgrind starts counting
    empty()
    os.getpgrp()  # marker: dump 1 (the empty session)
    full()
    os.getpgrp()  # marker: dump 2 (the session with `count` messages)


if __name__ == "__main__":
    main()
