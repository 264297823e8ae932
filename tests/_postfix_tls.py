"""A second private postfix on loopback: STARTTLS, implicit TLS and SMTP AUTH.

:class:`PostfixTlsAuthServer` is :class:`tests._postfix.PostfixServer` (same
unpacked postfix, same maildir delivery, same lifecycle) with:

Two listeners on ``127.0.0.1``
    ``port`` (:attr:`~PostfixTlsAuthServer.starttls_port`): STARTTLS offered
    (``smtpd_tls_security_level = may``), AUTH advertised and accepted only
    inside TLS (``smtpd_tls_auth_only = yes``).  ``smtps_port``: implicit TLS
    (``smtpd_tls_wrappermode = yes``, like port 465), AUTH offered at once.
    Both present a certificate for ``localhost`` (and ``127.0.0.1``) issued by
    the fixture's own :attr:`~PostfixTlsAuthServer.ca` (a ``trustme.CA``):
    ``server.ca.configure_trust(ctx)`` or :meth:`client_context` make a
    client context that trusts it.

SMTP AUTH through Dovecot SASL
    :class:`DovecotAuth` runs Dovecot's auth service alone (``protocols =``
    empty: no IMAP/POP3, no TCP listener) as the fixture's own process tree
    (``dovecot -F -c <workdir>/dovecot/dovecot.conf``, its own ``base_dir`` and
    ``state_dir``), with a ``passwd-file`` passdb storing ``{PLAIN}``
    passwords, so that every mechanism works: PLAIN, LOGIN, CRAM-MD5,
    SCRAM-SHA-1 and SCRAM-SHA-256 (:data:`MECHANISMS`).  Its auth socket is
    ``<queue_directory>/private/dovecot-auth`` (mode 0600, owned by postfix's
    ``mail_owner``), postfix's ``smtpd_sasl_path``.  Accounts
    (:attr:`~PostfixTlsAuthServer.accounts`): ``AUTH_USER`` / ``AUTH_PASSWORD``
    of ``tests/servers.py`` (non-ASCII: Dovecot compares the UTF-8 bytes, and
    ``auth_username_chars`` is emptied so ``ü`` is allowed), and an ASCII one,
    :data:`ASCII_USER` / :data:`ASCII_PASSWORD`, for clients that cannot send
    anything else (the standard library's smtplib, CPython gh-73936).
    Dovecot is chosen over Cyrus SASL because its auth service is one
    process with one plain configuration file and a passwd-file, started and
    stopped here; Cyrus would need saslauthd or an sasldb built with
    ``saslpasswd2`` plus an ``smtpd.conf`` that libsasl looks up in its own
    places.  The system's ``/etc/dovecot`` is never read.  Failed logins
    are not slowed down (``auth_failure_delay = 0`` and the per-IP auth
    penalty is off: its anvil socket is made unreachable, as Dovecot's
    documentation suggests), so a wrong password costs about 0.5 s (Dovecot
    answers failures on a 500 ms timer) however often the tests try one.

Relay rules
    ``smtpd_relay_restrictions = permit_sasl_authenticated,
    reject_unauth_destination``: recipients in :data:`TEST_DOMAIN` are
    accepted WITHOUT authentication (as the plain fixture accepts them), any
    other domain is refused to an unauthenticated client (``554 5.7.1 ...
    Relay access denied``) and, for an authenticated one, passes the relay
    check and then meets the ``error`` transport (``550 5.7.1 ... outbound
    delivery is disabled ...``): nothing ever leaves the machine.  Unlike the
    plain fixture, 127.0.0.0/8 is not trusted (no ``permit_mynetworks``).

Register with ``pytest_plugins = ["tests._postfix", "tests._postfix_tls"]``;
that provides the session-scoped :func:`postfix_tls_auth_server` fixture,
independent from ``postfix_server`` (own ports, own work directory), so both
can run in one session.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import ssl
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import final

import pytest
import trustme

from tests._postfix import (
    INSTALL_SCRIPT,
    MAIL_OWNER,
    PostfixError,
    PostfixNotInstalledError,
    PostfixServer,
    _live_processes,
    _read_greeting,
    check_installation,
    free_port,
    serve_for_session,
    start_daemon,
    stop_process_tree,
)
from tests.servers import AUTH_PASSWORD, AUTH_USER

__all__ = [
    "ASCII_PASSWORD",
    "ASCII_USER",
    "DOVECOT_BINARY",
    "MECHANISMS",
    "DovecotAuth",
    "PostfixTlsAuthServer",
    "check_tls_auth_installation",
    "postfix_tls_auth_server",
]

DOVECOT_BINARY = "/usr/sbin/dovecot"
#: Accounts the Debian package creates and Dovecot's services run as.
DOVECOT_USERS = ("dovecot", "dovenull")
#: What Dovecot offers through postfix, all usable with a ``{PLAIN}`` passdb.
MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256")
#: A second account, ASCII only (the standard library's smtplib can log in).
ASCII_USER, ASCII_PASSWORD = "ascii-user@example.test", "plain password 1"


def check_tls_auth_installation() -> None:
    """Check the unpacked postfix and dovecot-core with its accounts."""
    check_installation()
    if not os.access(DOVECOT_BINARY, os.X_OK):
        raise PostfixNotInstalledError(
            f"{DOVECOT_BINARY} is missing: the TLS+AUTH postfix fixture needs Debian's "
            f"dovecot-core; run `sudo bash {INSTALL_SCRIPT}` (as root)"
        )
    for user in DOVECOT_USERS:
        try:
            pwd.getpwnam(user)
        except KeyError:
            raise PostfixNotInstalledError(
                f"user {user!r} (made by dovecot-core) does not exist; run "
                f"`sudo bash {INSTALL_SCRIPT}`"
            ) from None


# --------------------------------------------------------------------------
# dovecot
# --------------------------------------------------------------------------


@final
class DovecotAuth:
    """Dovecot's auth service alone, as postfix's SASL server.

    Everything lives in *workdir* (``dovecot.conf``, ``passwd``, ``run/``
    as ``base_dir``, ``state/``, ``dovecot.log``); the client socket is
    *socket_path*, owned by *socket_owner* with mode 0600.  *accounts* maps
    user names to passwords (UTF-8, neither may hold ``:`` or a line break).
    """

    def __init__(
        self,
        workdir: Path,
        socket_path: Path,
        accounts: Mapping[str, str],
        *,
        socket_owner: str = MAIL_OWNER,
        mechanisms: Sequence[str] = MECHANISMS,
        start_timeout: float = 10.0,
    ) -> None:
        for text in (*accounts, *accounts.values()):
            if any(c in text for c in ":\r\n\0"):
                raise ValueError(f"a passwd-file field cannot hold {text!r}")
        self.workdir = workdir
        self.socket_path = socket_path
        self.accounts = dict(accounts)
        self.socket_owner = socket_owner
        self.mechanisms = tuple(mechanisms)
        self.start_timeout = start_timeout
        self.config_path = workdir / "dovecot.conf"
        self.passwd_path = workdir / "passwd"
        self.log_path = workdir / "dovecot.log"
        self._stderr_path = workdir / "dovecot.stderr"
        #: The mechanisms the auth service announced (read while starting).
        self.offered: tuple[str, ...] = ()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pgid: int | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The dovecot master's pid (its process group) while started."""
        return self._proc.pid if self._proc is not None else None

    def process_ids(self) -> list[int]:
        """Live processes of the last started dovecot's process group (none
        after :meth:`stop`)."""
        if self._pgid is None:
            return []
        return _live_processes(pgid=self._pgid, env_marker=None)

    def config(self) -> str:
        """The text of ``dovecot.conf``."""
        return f"""\
# Written by tests/_postfix_tls.py: dovecot's auth service only.
protocols =
listen = 127.0.0.1
base_dir = {self.workdir / "run"}
state_dir = {self.workdir / "state"}
instance_name = smtpclient-dovecot
log_path = {self.log_path}
info_log_path = {self.log_path}
debug_log_path = {self.log_path}
default_internal_user = {DOVECOT_USERS[0]}
default_login_user = {DOVECOT_USERS[1]}
ssl = no
# postfix decides where AUTH is allowed (smtpd_tls_auth_only).
disable_plaintext_auth = no
auth_mechanisms = {" ".join(m.lower() for m in self.mechanisms)}
# Any UTF-8 user name, taken as it is (not lowercased).
auth_username_chars =
auth_username_format = %u
auth_failure_delay = 0
auth_verbose = yes
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.passwd_path}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
# No growing delay after failed logins from one IP (the auth penalty): the
# tests fail passwords on purpose, all from 127.0.0.1.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service auth {{
  unix_listener {self.socket_path} {{
    mode = 0600
    user = {self.socket_owner}
  }}
}}
"""

    def start(self) -> None:
        """Write the configuration, start dovecot, wait for its auth socket."""
        if self._proc is not None:
            raise PostfixError("dovecot already started")
        for sub in ("run", "state"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config(), "utf-8")
        self.passwd_path.write_text(
            "".join(f"{user}:{{PLAIN}}{pw}::::::\n" for user, pw in self.accounts.items()),
            "utf-8",
        )
        # Read by the auth process, which runs as the internal user.
        os.chown(self.passwd_path, 0, grp.getgrnam(DOVECOT_USERS[0]).gr_gid)
        os.chmod(self.passwd_path, 0o640)
        self._proc = start_daemon(
            [DOVECOT_BINARY, "-F", "-c", str(self.config_path)],
            f"dovecot (auth socket {self.socket_path})",
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"},
            output=self._stderr_path,
            ready=self._answers,
            timeout=self.start_timeout,
            diagnostics=self.read_log,
            group=False,
        )
        self._pgid = self._proc.pid

    def _answers(self) -> bool:
        offered = self._handshake()
        if offered is None:
            return False
        self.offered = offered
        return True

    def _handshake(self) -> tuple[str, ...] | None:
        """Speak the auth client protocol's handshake; the MECH names, or None."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5.0)
                sock.connect(str(self.socket_path))
                sock.sendall(f"VERSION\t1\t2\nCPID\t{os.getpid()}\n".encode())
                data = b""
                while not data.startswith(b"DONE\n") and b"\nDONE\n" not in data:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return None
                    data += chunk
        except OSError:
            return None
        return tuple(
            line.split(b"\t")[1].decode()
            for line in data.splitlines()
            if line.startswith(b"MECH\t")
        )

    def stop(self) -> None:
        """Stop dovecot and every process it started."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process_tree(proc, "dovecot", diagnostics=self.read_log, group=False)

    def read_log(self) -> str:
        """Dovecot's log and its master's stderr."""
        parts = []
        for path in (self.log_path, self._stderr_path):
            try:
                text = path.read_text("utf-8", "replace")
            except FileNotFoundError:
                continue
            if text.strip():
                parts.append(f"--- {path.name} ---\n{text}")
        return "\n".join(parts)


# --------------------------------------------------------------------------
# postfix with TLS and AUTH
# --------------------------------------------------------------------------


@final
class PostfixTlsAuthServer(PostfixServer):
    """:class:`PostfixServer` with STARTTLS, an implicit-TLS port and AUTH.

    ``port`` is the STARTTLS port (AUTH only after STARTTLS), ``smtps_port``
    the implicit-TLS one (AUTH at once).  See the module's docstring.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        ca: trustme.CA | None = None,
        main_cf: Mapping[str, str] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        super().__init__(workdir, main_cf=main_cf, start_timeout=start_timeout)
        #: The CA that issued the server's certificate (trust it in clients).
        self.ca = ca if ca is not None else trustme.CA()
        self.user, self.password = AUTH_USER, AUTH_PASSWORD
        self.ascii_user, self.ascii_password = ASCII_USER, ASCII_PASSWORD
        #: Every account: user name to password.
        self.accounts = {AUTH_USER: AUTH_PASSWORD, ASCII_USER: ASCII_PASSWORD}
        self.smtps_port = 0
        self.tls_dir = self.workdir / "tls"
        self.dovecot = DovecotAuth(
            self.workdir / "dovecot",
            self.queue_dir / "private" / "dovecot-auth",
            self.accounts,
        )

    @property
    def starttls_port(self) -> int:
        """The STARTTLS port (the same as ``port``)."""
        return self.port

    @property
    def smtps_address(self) -> tuple[str, int]:
        """``(host, smtps_port)``: the implicit-TLS listener."""
        return (self.host, self.smtps_port)

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts :attr:`ca` (and nothing else)."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.load_verify_locations(cadata=self.ca.cert_pem.bytes().decode("ascii"))
        return context

    def process_ids(self) -> list[int]:
        """Postfix's live processes and dovecot's."""
        return super().process_ids() + self.dovecot.process_ids()

    # -- hooks ----------------------------------------------------------------

    def _pick_ports(self) -> None:
        super()._pick_ports()
        self.smtps_port = free_port(self.host)
        while self.smtps_port == self.port:
            self.smtps_port = free_port(self.host)

    def _feature_main_cf(self) -> dict[str, str]:
        return {
            "smtpd_tls_security_level": "may",
            "smtpd_tls_chain_files": str(self.tls_dir / "localhost.pem"),
            "smtpd_tls_auth_only": "yes",
            "smtpd_tls_loglevel": "1",
            "smtpd_tls_received_header": "no",
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_type": "dovecot",
            "smtpd_sasl_path": str(self.dovecot.socket_path),
            "smtpd_sasl_security_options": "noanonymous",
            "smtpd_sasl_tls_security_options": "noanonymous",
            "smtpd_sasl_authenticated_header": "no",
            "broken_sasl_auth_clients": "no",
            "smtpd_relay_restrictions": "permit_sasl_authenticated, reject_unauth_destination",
        }

    def _extra_services(self) -> list[str]:
        return [
            f"{self.host}:{self.smtps_port} inet n - n - - smtpd"
            " -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt",
            "tlsmgr    unix  - - n 1000? 1 tlsmgr",
        ]

    def _start_helpers(self) -> None:
        self.tls_dir.mkdir(exist_ok=True)
        os.chmod(self.tls_dir, 0o700)
        pem = self.tls_dir / "localhost.pem"
        self.ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
            str(pem)
        )
        os.chmod(pem, 0o600)
        self.dovecot.start()

    def _stop_helpers(self) -> None:
        self.dovecot.stop()

    def _is_ready(self) -> bool:
        return (
            super()._is_ready()
            and _read_greeting(self.host, self.smtps_port, 5.0, tls=self.client_context())
            is not None
        )

    def _diagnostics(self) -> str:
        return (
            super()._diagnostics()
            + "\n--- dovecot ---\n"
            + self.dovecot.read_log()
            + "\n--- end of dovecot ---"
        )


# --------------------------------------------------------------------------
# pytest fixture
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postfix_tls_auth_server() -> Iterator[PostfixTlsAuthServer]:
    """A started :class:`PostfixTlsAuthServer` shared by the whole session.

    FAILS (does not skip) when postfix or dovecot-core is missing.  Its
    maildir is its own (not ``postfix_server``'s); set
    ``SMTPCLIENT_POSTFIX_KEEP=1`` to keep the work directory.
    """
    yield from serve_for_session(
        PostfixTlsAuthServer,
        prefix="smtpclient-postfix-tls-",
        check=check_tls_auth_installation,
    )
