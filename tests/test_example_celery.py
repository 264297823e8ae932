"""examples/celery_pool, for real: a Redis broker, a prefork Celery worker, aiosmtpd.

Everything runs on loopback and is started (and stopped) here: redis-server
(.ci/install_servers.sh installs it), aiosmtpd in this process, and
``celery -A tasks worker --pool=prefork --concurrency=2`` in the example's
folder, as its README says.  The test sends 100 tasks and checks what the
server saw against what the tasks returned: every message once, from both
worker processes, each process over at most its ``max_connections``
connections, every connection ended with QUIT when the worker shut down.
"""

from __future__ import annotations

import contextlib
import email
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.result import AsyncResult

from tests._postfix import free_port
from tests.servers import running_controller

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "celery_pool"
TASK = "smtpclient_example.send_mail"
MESSAGES = 100
CONCURRENCY = 2
MAX_CONNECTIONS = 2  # per worker process
SENDER = "sender@example.test"
DEADLINE = 20.0  # seconds for all the results, worker start-up included

Peer = tuple[str, int]


@dataclass
class Recorder:
    """What aiosmtpd saw, per connection (a connection is its client's address)."""

    ehlo: list[Peer] = field(default_factory=list)
    quit: list[Peer] = field(default_factory=list)
    # (peer, Subject, Message-ID, envelope recipients), one per message received
    data: list[tuple[Peer, str, str, list[str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # The connection the Controller makes to check it started says no EHLO:
    # only connections that said EHLO count.
    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # a hook of this form must (aiosmtpd's docs)
        with self.lock:
            self.ehlo.append(session.peer)
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.original_content)
        with self.lock:
            self.data.append(
                (session.peer, parsed["Subject"], parsed["Message-ID"], list(envelope.rcpt_tos))
            )
        return "250 2.0.0 queued"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.quit.append(session.peer)
        return "221 2.0.0 bye"


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A private redis-server on a loopback port, no persistence, stopped afterwards."""
    binary = shutil.which("redis-server")
    # Not a skip: the example's test must run; .ci/install_servers.sh installs it.
    assert binary is not None, "redis-server is missing: run .ci/install_servers.sh"
    port = free_port()
    args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    args += ["--dir", str(tmp_path), "--daemonize", "no", "--loglevel", "warning"]
    with (tmp_path / "redis.log").open("wb") as log:
        server = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(100):
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                assert server.poll() is None, (tmp_path / "redis.log").read_text()
                time.sleep(0.05)
        else:
            raise AssertionError("redis-server did not answer PING in 5 s")
        client.close()
        yield f"redis://127.0.0.1:{port}"
    finally:
        _stop(server, timeout=5)


def _stop(process: subprocess.Popen[bytes], *, timeout: float, group: bool = False) -> None:
    """SIGTERM; SIGKILL if it still runs after ``timeout``; with ``group``, its whole group too."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if group:  # whatever it left behind (its children die with it, but be sure)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def _tail(path: Path) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-40:])


def test_one_pool_per_prefork_worker_process(redis_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    with running_controller(recorder, server_hostname="aiosmtpd.test", decode_data=False) as smtp:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "CELERY_BROKER_URL": f"{redis_url}/0",
            "CELERY_RESULT_BACKEND": f"{redis_url}/1",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp.port),
            "SMTP_TLS": "none",
            "SMTP_HELO_NAME": "worker.example.test",
            "SMTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        }
        log_path = tmp_path / "worker.log"
        command = [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool=prefork"]
        command += [f"--concurrency={CONCURRENCY}", "--loglevel=INFO", "--hostname=test@%h"]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        with log_path.open("wb") as log:
            worker = subprocess.Popen(
                command,
                cwd=EXAMPLE,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killed whole if it hangs
            )
        client = Celery("test-client", broker=f"{redis_url}/0", backend=f"{redis_url}/1")
        try:
            started = time.monotonic()
            pending: list[tuple[str, AsyncResult[Any]]] = []
            for i in range(MESSAGES):
                subject = f"message {i}"
                to = [f"user{i}@example.test", f"copy{i}@example.test"]
                body = f"body of message {i}\n"
                pending.append((subject, client.send_task(TASK, args=[SENDER, to, subject, body])))
            summaries: dict[str, dict[str, Any]] = {}
            for subject, result in pending:
                remaining = DEADLINE - (time.monotonic() - started)
                try:
                    summaries[subject] = result.get(timeout=max(0.1, remaining))
                except Exception as exc:
                    raise AssertionError(f"{subject}: {exc!r}\n{_tail(log_path)}") from exc
            elapsed = time.monotonic() - started

            # A warm shutdown: each child's worker_process_shutdown closes its pool.
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(15) == 0, _tail(log_path)
        finally:
            client.close()
            _stop(worker, timeout=5, group=True)

    # Every task says accepted, for every recipient, with the server's reply.
    assert len(summaries) == MESSAGES
    for subject, summary in summaries.items():
        assert summary["status"] == "accepted", (subject, summary)
        assert [r["status"] for r in summary["recipients"]] == ["accepted", "accepted"]
        replies = {(r["code"], r["text"]) for r in summary["recipients"]}
        assert replies == {(250, "2.0.0 queued")}, summary

    # Sent by both worker processes, neither of them the worker's parent.
    pids = Counter(summary["pid"] for summary in summaries.values())
    assert len(pids) == CONCURRENCY, pids
    assert worker.pid not in pids

    # Every message arrived exactly once, with its envelope and Message-ID.
    assert sorted(subject for _, subject, _, _ in recorder.data) == sorted(summaries)
    for _, subject, message_id, rcpt_tos in recorder.data:
        number = subject.split()[-1]
        assert rcpt_tos == [f"user{number}@example.test", f"copy{number}@example.test"]
        assert message_id == summaries[subject]["message_id"]

    # Each connection carried messages of one process only; each process opened
    # at most MAX_CONNECTIONS connections over the whole run, reused for all of
    # its messages (the default Policy.max_messages, 100, is not reached).
    pid_of_peer: dict[Peer, set[int]] = {}
    for peer, subject, _, _ in recorder.data:
        pid_of_peer.setdefault(peer, set()).add(summaries[subject]["pid"])
    assert all(len(owners) == 1 for owners in pid_of_peer.values()), pid_of_peer
    assert set(pid_of_peer) <= set(recorder.ehlo)
    connections_per_pid = Counter(next(iter(owners)) for owners in pid_of_peer.values())
    assert set(connections_per_pid) == set(pids)
    assert all(n <= MAX_CONNECTIONS for n in connections_per_pid.values()), connections_per_pid
    assert len(recorder.ehlo) == len(set(recorder.ehlo)) <= CONCURRENCY * MAX_CONNECTIONS

    # The pools were closed cleanly at shutdown: every connection ended with QUIT.
    assert sorted(recorder.quit) == sorted(recorder.ehlo)
    assert elapsed < DEADLINE
