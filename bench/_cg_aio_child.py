"""The sessions callgrind counts for ``aio.py``: ``_cg_aio_child.py WORLD CLIENT HOST PORT N``.

WORLD is ``asyncio`` or ``trio``; CLIENT one of ``aio.CLIENTS[WORLD]``.  In one
event loop, after the imports and ``BENCH_WARMUPS`` (default 2) warm-up
sessions of 10 messages (lazy imports, regular expression caches, CPython's
specialisation of every bytecode the per-message path runs), two sessions run
between markers:

1. connect, EHLO, QUIT (no message): the fixed cost of a session;
2. connect, EHLO, N small messages to one recipient, QUIT;
3. the same with 2N messages.

The markers are calls of C functions nothing else here calls: ``getppid``
before the first session (``--zero-before=getppid``: counting starts there)
and ``getpgrp`` after each (``--dump-before=getpgrp``: one dump per session).
``aio.py`` takes (Ir(3) - Ir(2)) / N as the steady-state cost of one message:
the session's fixed cost (connect, EHLO, QUIT) cancels.
"""

from __future__ import annotations

import gc
import os
import sys

import aio

WARMUPS_ENV = "BENCH_WARMUPS"


def main() -> None:
    world, client, host, port, count = (
        sys.argv[1],
        sys.argv[2],
        sys.argv[3],
        int(sys.argv[4]),
        int(sys.argv[5]),
    )
    address = (host, port)
    job = aio.make_job()
    session = aio.session_for(world, client)
    warmups = int(os.environ.get(WARMUPS_ENV, "2"))

    async def run() -> None:
        for _ in range(warmups):
            if await session(world, address, 10, job) != 10:
                raise aio.NotDelivered("warm-up")
        gc.collect()
        os.getppid()  # marker: callgrind starts counting
        empty = await session(world, address, 0, job)
        os.getpgrp()  # marker: dump 1 (no message)
        first = await session(world, address, count, job)
        os.getpgrp()  # marker: dump 2 (N messages)
        second = await session(world, address, 2 * count, job)
        os.getpgrp()  # marker: dump 3 (2N messages)
        if (empty, first, second) != (0, count, 2 * count):
            raise aio.NotDelivered(f"{client} on {world}: {first}, {second} accepted")

    aio.run_world(world, run)


if __name__ == "__main__":
    main()
