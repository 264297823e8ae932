"""The differential harness: one scripted conversation, run through smtplib and smtpclient.

- :mod:`tests.differential.server`: a reactive, deterministic SMTP/LMTP server on
  loopback that answers each command from a :class:`~tests.differential.server.Policy`
  and records every byte it receives;
- :mod:`tests.differential.scenarios`: hypothesis strategies for policies and for
  the client's call sequences (:class:`~tests.differential.scenarios.Script`);
- :mod:`tests.differential.compare`: runs one script against one policy through
  both libraries and compares what they returned, raised and sent;
- :mod:`tests.differential.deviations`: the named rules, one per documented
  difference from smtplib, that may explain a difference.

``tests/test_differential.py`` holds the tests.
"""
