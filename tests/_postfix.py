"""A real postfix SMTP server on loopback for the test suite, plus ``smtp-sink``.

Debian's postfix package is unpacked (never installed as a system MTA) by
``.ci/install_servers.sh`` into ``$SMTPCLIENT_POSTFIX_ROOT`` (default
``/opt/smtpclient-postfix``).  Everything here runs those binaries with
``LD_LIBRARY_PATH`` pointing at the unpacked ``usr/lib/postfix`` and with a
private configuration in a temporary directory: no system service, no
``/etc/postfix``, nothing written under ``/etc`` or ``/var``, and nothing
listening anywhere but ``127.0.0.1``.
Postfix's ``master`` must run as root (CI runs as root).

Register with ``pytest_plugins = ["tests._postfix"]`` (with the repository
root on ``sys.path``, e.g. ``pythonpath = ["."]``); that provides the
session-scoped :func:`postfix_server` fixture.  ``tests/_postfix_tls.py``
builds on this module: a second, independent instance with STARTTLS,
implicit TLS and SMTP AUTH (Dovecot SASL), ``postfix_tls_auth_server``.

Delivery
    Every recipient ``<anything>@postfix.test`` (:data:`TEST_DOMAIN`) is
    accepted and delivered by postfix's ``virtual(8)`` agent into ONE maildir,
    ``<workdir>/maildir/new/``, one file per (message, recipient) pair: a
    message sent to two recipients yields two files, told apart by their
    ``Delivered-To`` header (``wait_for_messages(..., recipient=...)`` filters
    on it).  Relaying from 127.0.0.0/8 is permitted, but the only transport
    for any other domain is ``error``, so smtpd refuses such recipients at
    RCPT time (``550 5.7.1 ... outbound delivery is disabled ...``): the test
    server never queues mail for, nor connects to, another host.  (Pass
    ``main_cf={"default_transport": "discard", "relay_transport": "discard"}``
    to accept and silently drop them instead.)

Line endings
    Postfix stores and delivers lines with bare LF, so the files (and the
    bytes :meth:`PostfixServer.wait_for_messages` returns) use LF.
    :func:`strip_trace_headers` removes the headers postfix prepended AND
    turns every LF back into CRLF, so its result equals, byte for byte, the
    message the client sent in DATA/BDAT after dot-unstuffing (with CRLF
    line endings and a final CRLF).  Bare LFs the client may have sent become
    CRLF too: postfix does not preserve them.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeVar, final

import pytest

__all__ = [
    "DEFAULT_ROOT",
    "DEFAULT_SINK_OPTIONS",
    "INSTALL_SCRIPT",
    "MAIL_OWNER",
    "SETGID_GROUP",
    "TEST_DOMAIN",
    "PostfixError",
    "PostfixNotInstalledError",
    "PostfixServer",
    "SmtpSink",
    "WaitForMessagesTimeout",
    "check_installation",
    "free_port",
    "postfix_env",
    "postfix_root",
    "postfix_server",
    "serve_for_session",
    "smtp_sink_path",
    "start_daemon",
    "stop_process_tree",
    "strip_trace_headers",
]

INSTALL_SCRIPT = ".ci/install_servers.sh"
DEFAULT_ROOT = "/opt/smtpclient-postfix"
ROOT_ENV_VAR = "SMTPCLIENT_POSTFIX_ROOT"
KEEP_ENV_VAR = "SMTPCLIENT_POSTFIX_KEEP"
MAIL_OWNER = "smtpclient-pf"
SETGID_GROUP = "smtpclient-pd"
TEST_DOMAIN = "postfix.test"
LOOPBACK = "127.0.0.1"

# Headers postfix adds in front of a delivered message, outermost first:
# virtual(8) prepends Return-Path, X-Original-To and Delivered-To, and
# smtpd(8) prepended one Received header before that.
_DELIVERY_HEADERS = (b"return-path", b"x-original-to", b"delivered-to")
_RECEIVED = b"received"

_QUEUE_SUBDIRS = (
    "active",
    "bounce",
    "corrupt",
    "defer",
    "deferred",
    "flush",
    "hold",
    "incoming",
    "saved",
    "trace",
)
_MAILDIR_NAME = re.compile(rb"^(\d+)\.V[0-9a-fA-F]+I[0-9a-fA-F]+M(\d+)\.")


class PostfixError(RuntimeError):
    """The test postfix could not be started, stopped or queried."""


class PostfixNotInstalledError(PostfixError):
    """The unpacked postfix (or its accounts) is missing."""


class WaitForMessagesTimeout(PostfixError, TimeoutError):
    """Fewer messages than expected were delivered in time."""


# --------------------------------------------------------------------------
# installation
# --------------------------------------------------------------------------


def postfix_root() -> Path:
    """The prefix holding the unpacked postfix package."""
    return Path(os.environ.get(ROOT_ENV_VAR) or DEFAULT_ROOT)


def _lib_dir(root: Path) -> Path:
    return root / "usr" / "lib" / "postfix"


def _daemon_dir(root: Path) -> Path:
    return root / "usr" / "lib" / "postfix" / "sbin"


def _command_dir(root: Path) -> Path:
    return root / "usr" / "sbin"


def _not_installed(problem: str) -> PostfixNotInstalledError:
    return PostfixNotInstalledError(
        f"{problem}. The test suite needs Debian's postfix unpacked (not installed "
        f"as a service): run `sudo bash {INSTALL_SCRIPT}` (as root; set "
        f"{ROOT_ENV_VAR} to use another prefix than {DEFAULT_ROOT})."
    )


def check_installation(root: Path | None = None) -> Path:
    """Check the unpacked postfix and its accounts; return the prefix.

    Raises :class:`PostfixNotInstalledError` naming ``.ci/install_servers.sh``.
    """
    root = postfix_root() if root is None else root
    for binary in (
        _daemon_dir(root) / "master",
        _daemon_dir(root) / "smtpd",
        _daemon_dir(root) / "virtual",
        _command_dir(root) / "postconf",
        _command_dir(root) / "smtp-sink",
    ):
        if not os.access(binary, os.X_OK):
            raise _not_installed(f"postfix binary {binary} is missing")
    for lib in ("libpostfix-global.so", "libpostfix-util.so"):
        if not (_lib_dir(root) / lib).is_file():
            raise _not_installed(f"postfix library {_lib_dir(root) / lib} is missing")
    try:
        pwd.getpwnam(MAIL_OWNER)
    except KeyError:
        raise _not_installed(f"user {MAIL_OWNER!r} (postfix mail_owner) does not exist") from None
    try:
        grp.getgrnam(SETGID_GROUP)
    except KeyError:
        raise _not_installed(
            f"group {SETGID_GROUP!r} (postfix setgid_group) does not exist"
        ) from None
    return root


def smtp_sink_path() -> str:
    """Path of the unpacked ``smtp-sink`` binary.

    Run it with :func:`postfix_env` (it needs ``LD_LIBRARY_PATH``), or use
    :class:`SmtpSink`.
    """
    root = check_installation()
    return str(_command_dir(root) / "smtp-sink")


def postfix_env(root: Path | None = None, config_dir: Path | None = None) -> dict[str, str]:
    """A minimal environment to run the unpacked postfix binaries."""
    root = postfix_root() if root is None else root
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LD_LIBRARY_PATH": str(_lib_dir(root)),
        "LANG": "C",
    }
    if "TZ" in os.environ:
        env["TZ"] = os.environ["TZ"]
    if config_dir is not None:
        env["MAIL_CONFIG"] = str(config_dir)
    return env


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on *host* that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _read_greeting(
    host: str, port: int, timeout: float, tls: ssl.SSLContext | None = None
) -> bytes | None:
    """Connect, read the first reply line, send QUIT; None if no 220.

    With *tls*, the connection is wrapped first (implicit TLS, checking the
    certificate for ``localhost``).
    """
    try:
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(socket.create_connection((host, port), timeout=timeout))
            if tls is not None:
                sock = stack.enter_context(tls.wrap_socket(sock, server_hostname="localhost"))
            with sock.makefile("rb") as reader:
                line = reader.readline(1024)
            if line.startswith(b"220"):
                with contextlib.suppress(OSError):
                    sock.sendall(b"QUIT\r\n")
                    sock.recv(1024)
                return line
    except OSError:
        return None
    return None


# --------------------------------------------------------------------------
# process bookkeeping
# --------------------------------------------------------------------------


def _live_processes(*, pgid: int | None, env_marker: bytes | None) -> list[int]:
    """Pids (not zombies) in process group *pgid* or with *env_marker* in
    their environment (an exact ``NAME=value`` entry)."""
    found: list[int] = []
    me = os.getpid()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for name in entries:
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
            fields = stat[stat.rindex(b")") + 2 :].split()
            state, pgrp = fields[0], int(fields[2])
        except (OSError, ValueError, IndexError):
            continue
        if state in (b"Z", b"X"):
            continue
        if pgid is not None and pgrp == pgid:
            found.append(pid)
            continue
        if env_marker is None:
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if env_marker in environ.split(b"\0"):
            found.append(pid)
    return found


def _kill_all(pids: Sequence[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _terminate(proc: subprocess.Popen[bytes], timeout: float, *, group: bool = True) -> None:
    """SIGTERM *proc*'s process group (it is a session leader), or with
    ``group=False`` *proc* alone (to let it stop its own children), then
    SIGKILL the group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(proc.pid, signal.SIGTERM)
            else:
                proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)


def start_daemon(
    argv: Sequence[str],
    what: str,
    *,
    env: Mapping[str, str],
    output: Path,
    ready: Callable[[], bool],
    timeout: float,
    diagnostics: Callable[[], str],
    env_marker: bytes | None = None,
    group: bool = True,
) -> subprocess.Popen[bytes]:
    """Start *argv* and wait until ``ready()`` is true.

    The daemon runs in a new session, so that it and what it starts form
    one process group (see :func:`stop_process_tree`, whose *env_marker* and
    *group* this takes), in *output*'s directory, with stdout and stderr
    into *output*.  If it exits
    first, or is not ready after *timeout* seconds, it is stopped and
    :class:`PostfixError` is raised, naming *what*, with ``diagnostics()``.
    """
    with open(output, "wb") as out:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            cwd=str(output.parent),
        )
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            problem = f"{what} exited with status {proc.returncode} while starting"
        elif time.monotonic() >= deadline:
            problem = f"{what} was not ready within {timeout:g}s"
        else:
            time.sleep(0.05)
            continue
        # Read the diagnostics first: stopping may add noise to the logs.
        error = PostfixError(problem + "\n" + diagnostics())
        stop_process_tree(proc, what, env_marker=env_marker, group=group)
        raise error
    return proc


def stop_process_tree(
    proc: subprocess.Popen[bytes],
    what: str,
    *,
    env_marker: bytes | None = None,
    timeout: float = 10.0,
    diagnostics: Callable[[], str] = str,
    group: bool = True,
) -> None:
    """Stop *proc* (a session leader started with ``start_new_session``) and
    every process it left: its process group and, with *env_marker*, any
    process carrying that ``NAME=value`` in its environment.  SIGTERM first
    (to the whole group, or with ``group=False`` to *proc* alone, which then
    stops its children itself), SIGKILL for what remains; raises
    :class:`PostfixError` naming *what* (with ``diagnostics()`` appended) if
    anything is still alive after *timeout*.
    """
    _terminate(proc, timeout=timeout, group=group)
    deadline = time.monotonic() + timeout
    sig = signal.SIGTERM
    while left := _live_processes(pgid=proc.pid, env_marker=env_marker):
        if time.monotonic() >= deadline:
            raise PostfixError(f"{what} processes still alive after stop: {left}\n" + diagnostics())
        _kill_all(left, sig)
        sig = signal.SIGKILL
        time.sleep(0.1)


# --------------------------------------------------------------------------
# messages
# --------------------------------------------------------------------------


def _header_block(raw: bytes) -> list[bytes]:
    """The header lines (with their line endings) of *raw*, unfolded into a
    list of whole fields (a field keeps its continuation lines)."""
    fields: list[bytes] = []
    for line in raw.splitlines(keepends=True):
        if line in (b"\n", b"\r\n"):
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def _field_name(field: bytes) -> bytes:
    name, sep, _ = field.partition(b":")
    return name.strip().lower() if sep else b""


def strip_trace_headers(raw: bytes) -> bytes:
    """Remove what postfix prepended to a delivered message; restore CRLF.

    From the top of *raw* (the bytes of a delivered file, LF line endings)
    this removes any ``Return-Path``, ``X-Original-To`` and ``Delivered-To``
    fields (added by the delivery agent) and then ONE ``Received`` field
    (added by smtpd, continuation lines included).  Only that leading block
    is touched: a ``Received`` header the client itself sent, further down,
    stays.  Then every LF is replaced by CRLF, so the result can be compared
    byte for byte with the message the client sent (CRLF line endings,
    dot-unstuffed, ending in CRLF).
    """
    fields = _header_block(raw)
    skip = 0
    while skip < len(fields) and _field_name(fields[skip]) in _DELIVERY_HEADERS:
        skip += 1
    if skip < len(fields) and _field_name(fields[skip]) == _RECEIVED:
        skip += 1
    body = raw[sum(len(f) for f in fields[:skip]) :]
    return body.replace(b"\n", b"\r\n")


def _delivered_to(raw: bytes) -> list[str]:
    out: list[str] = []
    for field in _header_block(raw):
        if _field_name(field) in (b"delivered-to", b"x-original-to"):
            value = field.partition(b":")[2].strip()
            out.append(value.decode("utf-8", "replace"))
    return out


def _maildir_sort_key(path: Path) -> tuple[int, int, int, str]:
    match = _MAILDIR_NAME.match(os.fsencode(path.name))
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        mtime = 0
    if match:
        return (int(match.group(1)), int(match.group(2)), mtime, path.name)
    return (mtime // 1_000_000_000, (mtime // 1000) % 1_000_000, mtime, path.name)


# --------------------------------------------------------------------------
# the server
# --------------------------------------------------------------------------


def _is_traversable(path: Path, uid: int, gids: set[int]) -> bool:
    st = path.stat()
    if st.st_uid == uid:
        return bool(st.st_mode & 0o100)
    if st.st_gid in gids:
        return bool(st.st_mode & 0o010)
    return bool(st.st_mode & 0o001)


ServerT = TypeVar("ServerT", bound="PostfixServer")


class PostfixServer:
    """A private postfix instance listening on ``127.0.0.1:<port>``.

    All of its files live in *workdir*: ``etc/`` (main.cf, master.cf),
    ``spool/`` (queue_directory), ``data/`` (data_directory), ``maildir/``
    (delivered mail) and ``maillog`` (postfix's log).  *workdir* and every
    directory above it must be searchable by the unprivileged
    ``smtpclient-pf`` account (delivery runs as that user), which pytest's
    ``tmp_path`` is not: use e.g. ``tempfile.mkdtemp()``.

    *main_cf* entries override or extend the generated ``main.cf``.

    A subclass adds features (TLS, AUTH: ``tests/_postfix_tls.py``) through
    the hooks ``_pick_ports``, ``_feature_main_cf``, ``_extra_services``,
    ``_start_helpers``, ``_stop_helpers``, ``_is_ready`` and
    ``_diagnostics``; the lifecycle (port retries, start, wait, stop) stays
    here.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        host: str = LOOPBACK,
        port: int | None = None,
        root: Path | None = None,
        main_cf: Mapping[str, str] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.host = host
        self._requested_port = port
        self.port = port if port is not None else 0
        self.root = root
        self.extra_main_cf: dict[str, str] = dict(main_cf or {})
        self.start_timeout = start_timeout
        self.domain = TEST_DOMAIN
        self.config_dir = self.workdir / "etc"
        self.queue_dir = self.workdir / "spool"
        self.data_dir = self.workdir / "data"
        self.maildir = self.workdir / "maildir"
        self.log_path = self.workdir / "maillog"
        self._master_stderr = self.workdir / "master.stderr"
        self._proc: subprocess.Popen[bytes] | None = None

    # -- public API ---------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` of the SMTP listener."""
        return (self.host, self.port)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def process_ids(self) -> list[int]:
        """Pids of this instance's live processes (master and its children,
        recognised by ``MAIL_CONFIG=<config_dir>`` in their environment)."""
        return _live_processes(pgid=None, env_marker=self._env_marker())

    def _env_marker(self) -> bytes:
        return b"MAIL_CONFIG=" + os.fsencode(str(self.config_dir))

    def address_for(self, local_part: str) -> str:
        """``local_part@postfix.test``."""
        return f"{local_part}@{self.domain}"

    def start(self) -> None:
        """Write the configuration, start ``master`` and wait for a 220."""
        if self._proc is not None:
            raise PostfixError("postfix server already started")
        if os.geteuid() != 0:
            raise PostfixError(
                "postfix's master daemon must run as root; run the tests as root "
                f"(CI does) after `sudo bash {INSTALL_SCRIPT}`"
            )
        self.root = check_installation(self.root)
        attempts = 1 if self._requested_port is not None else 3
        last: PostfixError | None = None
        for _ in range(attempts):
            self._pick_ports()
            try:
                self._start_once()
                return
            except PostfixError as exc:
                last = exc
                self._stop_processes()
                if "in use" not in str(exc):
                    break
        assert last is not None
        raise last

    def stop(self) -> None:
        """Stop postfix; make sure none of its processes is left."""
        self._stop_processes()

    def __enter__(self: ServerT) -> ServerT:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def read_log(self, max_lines: int | None = None) -> str:
        """postfix's log (``maillog_file``), optionally only the last lines."""
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            text = ""
        try:
            stderr = self._master_stderr.read_text("utf-8", "replace")
        except FileNotFoundError:
            stderr = ""
        if stderr.strip():
            text += "\n[master stderr]\n" + stderr
        if max_lines is not None:
            text = "\n".join(text.splitlines()[-max_lines:])
        return text

    def message_paths(self) -> list[Path]:
        """Delivered message files, in delivery order (best effort)."""
        paths: list[Path] = []
        for sub in ("new", "cur"):
            with contextlib.suppress(FileNotFoundError):
                paths.extend(p for p in (self.maildir / sub).iterdir() if p.is_file())
        return sorted(paths, key=_maildir_sort_key)

    def messages(self, *, recipient: str | None = None) -> list[bytes]:
        """Raw bytes (LF line endings) of the messages delivered so far."""
        out: list[bytes] = []
        for path in self.message_paths():
            try:
                raw = path.read_bytes()
            except FileNotFoundError:  # removed by clear_messages() meanwhile
                continue
            if recipient is None or recipient.casefold() in (
                r.casefold() for r in _delivered_to(raw)
            ):
                out.append(raw)
        return out

    def clear_messages(self) -> None:
        """Delete every delivered message (e.g. at the start of a test)."""
        for path in self.message_paths():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def wait_for_messages(
        self, count: int, timeout: float = 20.0, *, recipient: str | None = None
    ) -> list[bytes]:
        """Wait until at least *count* messages were delivered; return them all.

        Returns the raw bytes of every delivered file (LF line endings, trace
        headers included: see :func:`strip_trace_headers`), oldest first.
        With *recipient*, only copies delivered to that address count (matched
        case-insensitively against ``Delivered-To``/``X-Original-To``).
        Messages from earlier tests are included unless
        :meth:`clear_messages` was called.  Raises
        :class:`WaitForMessagesTimeout` (with postfix's log) on timeout.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(recipient=recipient)
            if len(found) >= count:
                return found
            if not self.running:
                raise PostfixError(
                    f"postfix is not running while waiting for {count} message(s)\n"
                    + self._diagnostics()
                )
            if time.monotonic() >= deadline:
                who = f" for {recipient!r}" if recipient else ""
                raise WaitForMessagesTimeout(
                    f"timed out after {timeout:g}s waiting for {count} delivered "
                    f"message(s){who}; found {len(found)} in {self.maildir}/new\n"
                    + self._diagnostics()
                )
            time.sleep(0.05)

    # -- hooks for subclasses -------------------------------------------------

    def _pick_ports(self) -> None:
        """Choose the listening port(s), afresh for each start attempt."""
        self.port = (
            self._requested_port if self._requested_port is not None else free_port(self.host)
        )

    def _feature_main_cf(self) -> dict[str, str]:
        """``main.cf`` entries of a subclass's features (before *main_cf*)."""
        return {}

    def _extra_services(self) -> list[str]:
        """More ``master.cf`` rows (listeners, helper services)."""
        return []

    def _start_helpers(self) -> None:
        """Start what postfix needs beside it; runs after the directories and
        configuration are written, before ``master`` starts."""

    def _stop_helpers(self) -> None:
        """Stop what :meth:`_start_helpers` started (after ``master``); must
        be safe to call when nothing, or only part of it, was started."""

    def _is_ready(self) -> bool:
        """Whether the server answers (polled while starting)."""
        return _read_greeting(self.host, self.port, timeout=5.0) is not None

    # -- internals ------------------------------------------------------------

    def _diagnostics(self) -> str:
        queued: list[str] = []
        for sub in ("incoming", "active", "deferred", "hold", "corrupt"):
            with contextlib.suppress(OSError):
                n = sum(len(files) for _, _, files in os.walk(self.queue_dir / sub))
                if n:
                    queued.append(f"{sub}={n}")
        return (
            f"queue: {', '.join(queued) or 'empty'}\n"
            f"--- postfix log ({self.log_path}, last 80 lines) ---\n"
            f"{self.read_log(max_lines=80)}\n--- end of postfix log ---"
        )

    def _main_cf(self, root: Path, owner_uid: int, owner_gid: int) -> dict[str, str]:
        lib = _lib_dir(root)
        outbound_off = "error:5.7.1 outbound delivery is disabled in the smtpclient test server"
        cf: dict[str, str] = {
            "compatibility_level": "3.6",
            # Everything in our own directories; binaries from the prefix.
            "config_directory": str(self.config_dir),
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            "daemon_directory": str(_daemon_dir(root)),
            "command_directory": str(_command_dir(root)),
            "shlib_directory": str(lib),
            "meta_directory": str(root / "etc" / "postfix"),
            "sendmail_path": str(_command_dir(root) / "sendmail"),
            "newaliases_path": str(_command_dir(root) / "newaliases"),
            "mailq_path": str(_command_dir(root) / "mailq"),
            "manpage_directory": "/nonexistent",
            "sample_directory": "/nonexistent",
            "readme_directory": "no",
            "html_directory": "no",
            "mail_owner": MAIL_OWNER,
            "setgid_group": SETGID_GROUP,
            "import_environment": (
                "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C POSTLOG_SERVICE "
                f"POSTLOG_HOSTNAME LD_LIBRARY_PATH={lib}"
            ),
            # Logging without syslog (postlogd, see master.cf).
            "maillog_file": str(self.log_path),
            "maillog_file_prefixes": str(self.workdir),
            # Identity; no DNS, no local users, no aliases.
            "myhostname": TEST_DOMAIN,
            "mydomain": TEST_DOMAIN,
            "myorigin": TEST_DOMAIN,
            "mydestination": "",
            "append_dot_mydomain": "no",
            "biff": "no",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "inet_interfaces": self.host,
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "disable_dns_lookups": "yes",
            "smtp_host_lookup": "native",
            "lmtp_host_lookup": "native",
            "smtp_dns_support_level": "disabled",
            "smtpd_peername_lookup": "no",
            # Never deliver anywhere but into the maildir.
            "default_transport": outbound_off,
            "relay_transport": outbound_off,
            "local_transport": "error:5.1.1 local delivery is disabled here",
            "virtual_transport": "virtual",
            "virtual_mailbox_domains": TEST_DOMAIN,
            "virtual_mailbox_base": str(self.workdir),
            "virtual_mailbox_maps": "static:maildir/",
            "virtual_alias_maps": "",
            "virtual_minimum_uid": "1",
            "virtual_uid_maps": f"static:{owner_uid}",
            "virtual_gid_maps": f"static:{owner_gid}",
            "notify_classes": "",
            "delay_warning_time": "0h",
            # Leave message content alone.
            "local_header_rewrite_clients": "",
            "always_add_missing_headers": "no",
            # ESMTP: PIPELINING SIZE 8BITMIME SMTPUTF8 CHUNKING DSN
            # ENHANCEDSTATUSCODES (VRFY, ETRN too); no TLS, no AUTH.
            "smtputf8_enable": "yes",
            "smtpd_discard_ehlo_keywords": "",
            "smtpd_tls_security_level": "none",
            "smtpd_sasl_auth_enable": "no",
            "smtpd_banner": "$myhostname ESMTP",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_recipient_restrictions": "",
            # Fast and tolerant for tests.
            "smtpd_error_sleep_time": "0s",
            "smtpd_soft_error_limit": "100",
            "smtpd_hard_error_limit": "1000",
            "smtpd_junk_command_limit": "1000",
            "smtpd_timeout": "60s",
            "in_flow_delay": "0s",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
        }
        cf.update(self._feature_main_cf())
        cf.update(self.extra_main_cf)
        return cf

    def _master_cf(self) -> str:
        # service type private unpriv chroot wakeup maxproc command
        rows = [
            f"{self.host}:{self.port} inet n - n - - smtpd",
            "cleanup   unix  n - n -    0 cleanup",
            "qmgr      unix  n - n 300  1 qmgr",
            "rewrite   unix  - - n -    - trivial-rewrite",
            "bounce    unix  - - n -    0 bounce",
            "defer     unix  - - n -    0 bounce",
            "trace     unix  - - n -    0 bounce",
            "verify    unix  - - n -    1 verify",
            "flush     unix  n - n 1000? 0 flush",
            "proxymap  unix  - - n -    - proxymap",
            "proxywrite unix - - n -    1 proxymap",
            "showq     unix  n - n -    - showq",
            "error     unix  - - n -    - error",
            "retry     unix  - - n -    - error",
            "discard   unix  - - n -    - discard",
            "virtual   unix  - n n -    - virtual",
            "anvil     unix  - - n -    1 anvil",
            "scache    unix  - - n -    1 scache",
            "postlog   unix-dgram n - n - 1 postlogd",
            *self._extra_services(),
        ]
        return "\n".join(rows) + "\n"

    def _prepare(self, root: Path) -> None:
        owner = pwd.getpwnam(MAIL_OWNER)
        sgid = grp.getgrnam(SETGID_GROUP).gr_gid
        uid, gid = owner.pw_uid, owner.pw_gid

        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        gids = {gid} | {g.gr_gid for g in grp.getgrall() if MAIL_OWNER in g.gr_mem}
        for parent in self.workdir.parents:
            if not _is_traversable(parent, uid, gids):
                raise PostfixError(
                    f"{parent} is not searchable by {MAIL_OWNER!r}, so postfix cannot "
                    f"deliver into {self.maildir}; use a work directory under e.g. /tmp"
                )

        def mkdir(path: Path, mode: int, owner_uid: int = 0, owner_gid: int = 0) -> None:
            path.mkdir(exist_ok=True)
            os.chown(path, owner_uid, owner_gid)
            os.chmod(path, mode)

        mkdir(self.config_dir, 0o755)
        (self.config_dir / "main.cf").write_text(
            "".join(f"{k} = {v}\n" for k, v in self._main_cf(root, uid, gid).items())
        )
        (self.config_dir / "master.cf").write_text(self._master_cf())
        # Postfix re-reads a configuration file whose mtime is not in the
        # past yet (guarding against concurrent writers), sleeping 300 ms per
        # try: backdate them so that no program waits ~2 s at startup.
        past = time.time() - 60
        for name in ("main.cf", "master.cf"):
            os.utime(self.config_dir / name, (past, past))

        mkdir(self.queue_dir, 0o755)
        for sub in _QUEUE_SUBDIRS:
            mkdir(self.queue_dir / sub, 0o700, uid)
        mkdir(self.queue_dir / "private", 0o700, uid)
        mkdir(self.queue_dir / "maildrop", 0o730, uid, sgid)
        mkdir(self.queue_dir / "public", 0o710, uid, sgid)
        mkdir(self.queue_dir / "pid", 0o755)
        mkdir(self.data_dir, 0o700, uid)
        mkdir(self.maildir, 0o700, uid, gid)
        for sub in ("tmp", "new", "cur"):
            mkdir(self.maildir / sub, 0o700, uid, gid)

    def _start_once(self) -> None:
        assert self.root is not None
        root = self.root
        self._prepare(root)
        env = postfix_env(root, self.config_dir)
        check = subprocess.run(
            [str(_command_dir(root) / "postconf"), "-c", str(self.config_dir), "-n"],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        if check.returncode != 0 or b"warning" in check.stderr:
            raise PostfixError(
                f"postconf rejected {self.config_dir}/main.cf:\n"
                + check.stderr.decode("utf-8", "replace")
            )
        self._start_helpers()
        self._proc = start_daemon(
            [str(_daemon_dir(root) / "master"), "-c", str(self.config_dir), "-d"],
            f"postfix master on {self.host}:{self.port}",
            env=env,
            output=self._master_stderr,
            ready=self._is_ready,
            timeout=self.start_timeout,
            diagnostics=self._diagnostics,
            env_marker=self._env_marker(),
        )

    def _stop_processes(self) -> None:
        proc, self._proc = self._proc, None
        try:
            if proc is not None:
                stop_process_tree(
                    proc, "postfix", env_marker=self._env_marker(), diagnostics=self._diagnostics
                )
        finally:
            self._stop_helpers()


# --------------------------------------------------------------------------
# smtp-sink
# --------------------------------------------------------------------------

#: Default ``smtp-sink`` options: IPv4, no AUTH/XCLIENT/XFORWARD
#: advertised.  It then advertises PIPELINING, 8BITMIME,
#: ENHANCEDSTATUSCODES and DSN (plus an empty last EHLO line, ``250 ``).
DEFAULT_SINK_OPTIONS: tuple[str, ...] = ("-4", "-a", "-C", "-F")


@final
class SmtpSink:
    """Postfix's ``smtp-sink`` on ``127.0.0.1:<free port>``: accepts and
    discards every message (for benchmarks and smoke tests).

    ``options`` replaces :data:`DEFAULT_SINK_OPTIONS`; ``-h hostname`` and
    (as root) ``-u smtpclient-pf`` are always added.
    """

    def __init__(
        self,
        *,
        host: str = LOOPBACK,
        port: int | None = None,
        backlog: int = 1000,
        options: Sequence[str] = DEFAULT_SINK_OPTIONS,
        hostname: str = "sink.test",
        start_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.port = port if port is not None else 0
        self.backlog = backlog
        self.options = tuple(options)
        self.hostname = hostname
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr = b""

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self._proc is not None:
            raise PostfixError("smtp-sink already started")
        binary = smtp_sink_path()
        attempts = 1 if self._requested_port is not None else 3
        error = ""
        for _ in range(attempts):
            self.port = (
                self._requested_port if self._requested_port is not None else free_port(self.host)
            )
            error = self._start_once(binary)
            if not error:
                return
        raise PostfixError(error)

    def _start_once(self, binary: str) -> str:
        argv = [binary, *self.options, "-h", self.hostname]
        if os.geteuid() == 0:
            argv += ["-u", MAIL_OWNER]
        argv += [f"{self.host}:{self.port}", str(self.backlog)]
        with tempfile.TemporaryFile() as stderr:
            proc = subprocess.Popen(
                argv,
                env=postfix_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
            self._proc = proc
            deadline = time.monotonic() + self.start_timeout
            while True:
                if proc.poll() is not None:
                    stderr.seek(0)
                    self._proc = None
                    return (
                        f"smtp-sink exited with status {proc.returncode}: {argv}\n"
                        + stderr.read().decode("utf-8", "replace")
                    )
                if _read_greeting(self.host, self.port, timeout=2.0) is not None:
                    return ""
                if time.monotonic() >= deadline:
                    self.stop()
                    stderr.seek(0)
                    return f"smtp-sink did not greet within {self.start_timeout:g}s: {argv}\n" + (
                        stderr.read().decode("utf-8", "replace")
                    )
                time.sleep(0.02)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        stop_process_tree(proc, "smtp-sink", timeout=5.0)

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------
# pytest fixture
# --------------------------------------------------------------------------


def serve_for_session(
    factory: Callable[[Path], ServerT],
    *,
    prefix: str = "smtpclient-postfix-",
    check: Callable[[], object] = check_installation,
) -> Iterator[ServerT]:
    """The body of a session fixture: check, start, yield, stop, clean up.

    ``check()`` runs first (it raises :class:`PostfixNotInstalledError` when
    something is missing); the server is made by ``factory(workdir)`` in a
    fresh ``mkdtemp(prefix=prefix)`` directory.  Missing software or a
    failed start FAILS the requesting tests (no skip).  The work directory
    is removed afterwards unless ``SMTPCLIENT_POSTFIX_KEEP`` is set.
    """
    try:
        check()
    except PostfixNotInstalledError as exc:
        pytest.fail(str(exc), pytrace=False)
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    server = factory(workdir)
    try:
        try:
            server.start()
        except PostfixError as exc:
            pytest.fail(f"could not start the test postfix: {exc}", pytrace=False)
        yield server
    finally:
        server.stop()
        if not os.environ.get(KEEP_ENV_VAR):
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def postfix_server() -> Iterator[PostfixServer]:
    """A started :class:`PostfixServer` shared by the whole session.

    FAILS (does not skip) when the unpacked postfix is missing.  Tests share
    the maildir: call ``postfix_server.clear_messages()`` first or wait with
    ``recipient=`` a unique address.  Set ``SMTPCLIENT_POSTFIX_KEEP=1`` to
    keep the work directory (config, log, maildir) for inspection.
    """
    yield from serve_for_session(PostfixServer)
