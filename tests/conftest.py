"""Shared fixtures: hypothesis profiles, an aiosmtpd server, the postfix fixture."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import trustme
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    # Imported in the fixtures: tests.servers imports tests._postfix, which
    # must be first imported as a plugin so pytest can rewrite its asserts.
    from tests.servers import AiosmtpdServer

pytest_plugins = ["tests._postfix", "tests._postfix_tls"]

# "ci" is bounded so the whole CI run stays well under its 15 minutes; "dev"
# (the default locally) and "deep" search harder.
# CI is derandomized: the same examples every run, so that a coverage gate or
# a failure never depends on the draw.  The dev and deep profiles explore.
settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=500, deadline=None)
settings.register_profile("deep", max_examples=20_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture
def aiosmtpd_server() -> Iterator[AiosmtpdServer]:
    """A fresh aiosmtpd server on a loopback port, stopped after the test."""
    from tests.servers import AiosmtpdServer

    with AiosmtpdServer() as server:
        yield server


@pytest.fixture
def aiosmtpd_lmtp_server() -> Iterator[AiosmtpdServer]:
    """An aiosmtpd LMTP server on a loopback port."""
    from tests.servers import AiosmtpdServer

    with AiosmtpdServer(lmtp=True) as server:
        yield server


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A certificate authority no system trusts (trustme), for the TLS tests."""
    return trustme.CA()


# -- for the stream tests of every world (tests/stream_peers.py) ------------------


@pytest.fixture(scope="session")
def localhost_cert(ca: trustme.CA) -> trustme.LeafCert:
    """A certificate for ``localhost`` from :func:`ca`."""
    return ca.issue_cert("localhost")


# Contexts are built once per session (create_default_context loads the system's
# CA store, about 0.1 s) and never changed by a test.
@pytest.fixture(scope="session")
def server_context(localhost_cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    localhost_cert.configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture(scope="session")
def payload() -> bytes:
    """20 MiB, random so that a lost or misplaced byte shows."""
    return os.urandom(20 * 1024 * 1024)
