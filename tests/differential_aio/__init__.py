"""The differential harness of the asyncio face: aiosmtplib and ``smtpclient.aio``, side by side.

- :mod:`tests.differential_aio.scenarios`: hypothesis strategies for the server's policy
  (:class:`~tests.differential_aio.scenarios.AioPolicy`: the reactive server's
  :class:`~tests.differential.server.Policy` plus the pace of its writes) and for the
  client's calls (:class:`~tests.differential_aio.scenarios.Script`);
- :mod:`tests.differential_aio.compare`: runs one conversation through one library, each
  run in its own ``asyncio.run`` against its own server (``tests/differential/server.py``'s
  :class:`~tests.differential.server.ReactiveServer`, adapted by subclassing: STARTTLS,
  paced writes, a close held until the client has reacted, a quiescence test), and compares
  two runs step by step;
- :mod:`tests.differential_aio.deviations`: the named rules, one per documented difference
  from aiosmtplib, that may explain a difference.

``tests/test_differential_aio.py`` holds the tests.
"""
