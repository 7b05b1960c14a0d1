"""``--workers N``: the flag, the metrics merge, and real worker processes behind one address and one endpoint."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.rcode
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devtools.localetcd import LocalEtcd, free_port
from resolver.server import free_dns_port
from resolver.workers import BACKOFF_MAX, backoff_delay, label_samples, parse_workers
from tests.processes import Process, http_status, wait_until

ZONE = "skydns.test."
NAME = "www.skydns.test."
KEY = "/skydns/test/skydns/www"


@dataclass(frozen=True)
class WorkersCase:
    text: str
    count: int | None = None
    error: str | None = None


WORKERS_CASES = [
    WorkersCase("1", 1),
    WorkersCase("2", 2),
    WorkersCase(" 4 ", 4),
    WorkersCase("auto", len(os.sched_getaffinity(0))),
    WorkersCase("AUTO", len(os.sched_getaffinity(0))),
    WorkersCase("0", error="not between 1 and 256"),
    WorkersCase("257", error="not between 1 and 256"),
    WorkersCase("two", error="expected a number of processes or 'auto'"),
    WorkersCase("", error="expected a number"),
]


@pytest.mark.parametrize("case", WORKERS_CASES, ids=lambda c: repr(c.text))
def test_workers_flag(case: WorkersCase) -> None:
    if case.error is not None:
        with pytest.raises(ValueError, match=case.error):
            parse_workers(case.text)
        return
    assert parse_workers(case.text) == case.count


def test_worker_metrics_are_merged_with_a_worker_label() -> None:
    worker = ('# HELP q_total Queries\n# TYPE q_total counter\nq_total{rcode="NOERROR"} %d\n'
              '# HELP up Up\n# TYPE up gauge\nup 1\n')
    families = {f.name: f for f in label_samples({0: worker % 3, 1: worker % 5})}
    assert families["q"].type == "counter"
    assert [(s.name, s.labels, s.value) for s in families["q"].samples] == [
        ("q_total", {"rcode": "NOERROR", "worker": "0"}, 3.0), ("q_total", {"rcode": "NOERROR", "worker": "1"}, 5.0)]
    assert [s.labels for s in families["up"].samples] == [{"worker": "0"}, {"worker": "1"}]


def test_restart_backoff_doubles_up_to_a_limit() -> None:
    delays = [backoff_delay(n) for n in range(1, 10)]
    assert delays[:3] == [0.5, 1.0, 2.0] and delays[-1] == BACKOFF_MAX
    assert delays == sorted(delays)


# -- real processes -------------------------------------------------------------------------------------------


def etcdctl(endpoint: str, *args: str) -> None:
    subprocess.run([str(Path(sys.executable).parent / "etcdctl"), "--endpoints", endpoint, *args], check=True,
                   capture_output=True, timeout=10)


def answer(port: int) -> tuple[str, tuple[str, ...]]:
    """One query from a new socket, so from a new source port (the kernel picks the worker by it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(dns.message.make_query(NAME, "A").to_wire(), ("127.0.0.1", port))
        reply = dns.message.from_wire(s.recv(65535))
    return dns.rcode.to_text(reply.rcode()), tuple(sorted(rd.to_text() for rrset in reply.answer for rd in rrset))


def per_worker_noerror(http_port: int) -> dict[str, float]:
    status, body = http_status(http_port, "/metrics")
    assert status == 200
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        if family.name == "dnssync_resolver_responses":
            for s in family.samples:
                if s.name.endswith("_total") and s.labels.get("rcode") == "NOERROR":
                    counts[s.labels["worker"]] = s.value
    return counts


def per_worker_udp_answers_timed(http_port: int) -> dict[str, float]:
    """Per worker, the count of the merged ``dnssync_resolver_answer_duration_seconds`` histogram over UDP (answered
    at once), checked to be a histogram whose ``+Inf`` bucket equals its count."""
    status, body = http_status(http_port, "/metrics")
    assert status == 200
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        if family.name == "dnssync_resolver_answer_duration_seconds":
            assert family.type == "histogram"
            udp = [s for s in family.samples
                   if s.labels.get("transport") == "udp" and s.labels.get("answered") == "at_once"]
            counts.update((s.labels["worker"], s.value) for s in udp if s.name.endswith("_count"))
            for s in udp:
                if s.labels.get("le") == "+Inf":
                    assert s.value == counts[s.labels["worker"]], s
    return counts


def health(http_port: int) -> dict[str, object]:
    status, body = http_status(http_port, "/healthz")
    assert status == 200
    return json.loads(body)


def worker_pids(http_port: int) -> dict[str, int]:
    workers = health(http_port)["workers"]
    assert isinstance(workers, dict)
    return {i: w["pid"] for i, w in workers.items()}


def worker_state(http_port: int, index: str) -> tuple[int, bool]:
    workers = health(http_port)["workers"]
    assert isinstance(workers, dict)
    return workers[index]["pid"], workers[index]["running"]


def gone(pid: int) -> bool:
    """The process has exited (no longer there, or a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for p in started:
        if p.proc.poll() is None:
            p.stop(signal.SIGKILL)


def start(tmp_path: Path, etcd: LocalEtcd, processes: list[Process], workers: str = "2") -> tuple[Process, int, int]:
    dns_port, http_port = free_dns_port(), free_port()
    p = Process(["--zone", ZONE, "--etcd-endpoints", etcd.endpoint, "--listen", f"127.0.0.1:{dns_port}",
                 "--http-listen", f"127.0.0.1:{http_port}", "--workers", workers, "--log-format", "json"],
                tmp_path / "err.log")
    processes.append(p)
    return p, dns_port, http_port


def events(p: Process) -> list[dict[str, object]]:
    return [json.loads(line) for line in p.log.read_text().splitlines() if line.startswith("{")]


@pytest.mark.timeout(120)
def test_two_workers_both_answer_and_both_follow_etcd(tmp_path: Path, processes: list[Process]) -> None:
    with LocalEtcd() as etcd:
        etcdctl(etcd.endpoint, "put", KEY, '{"host":"10.0.0.1"}')
        p, dns_port, http_port = start(tmp_path, etcd, processes)
        wait_until(lambda: http_status(http_port, "/readyz")[0] == 200, 60, "/readyz 200 from both workers")
        pids = worker_pids(http_port)
        assert len(pids) == 2 and len(set(pids.values())) == 2 and os.getpid() not in pids.values()

        assert {answer(dns_port) for _ in range(40)} == {("NOERROR", ("10.0.0.1",))}
        counts = per_worker_noerror(http_port)
        assert set(counts) == {"0", "1"} and all(n > 0 for n in counts.values()), counts

        etcdctl(etcd.endpoint, "put", KEY, '{"host":"10.0.0.2"}')
        wait_until(lambda: answer(dns_port) == ("NOERROR", ("10.0.0.2",)), 10, "the change")
        before = per_worker_noerror(http_port)
        assert all(answer(dns_port) == ("NOERROR", ("10.0.0.2",)) for _ in range(40)), "a worker missed the change"
        after = per_worker_noerror(http_port)
        assert all(after[w] > before[w] for w in ("0", "1")), (before, after)  # both answered after the change
        timed = per_worker_udp_answers_timed(http_port)
        assert set(timed) == {"0", "1"} and all(n > 0 for n in timed.values()), timed

        _, body = http_status(http_port, "/metrics")
        assert b"dnssync_resolver_workers 2.0" in body and b"dnssync_resolver_workers_up 2.0" in body
        assert b'dnssync_resolver_ready{worker="0"} 1.0' in body and b'dnssync_resolver_ready{worker="1"} 1.0' in body

        p.proc.kill()  # the supervisor dies without stopping anything: the workers notice and stop
        p.proc.wait(10)
        wait_until(lambda: all(gone(pid) for pid in pids.values()), 20, "the workers to stop with the supervisor")


@pytest.mark.timeout(120)
def test_ready_waits_for_every_worker_and_a_dead_worker_is_restarted(tmp_path: Path,
                                                                      processes: list[Process]) -> None:
    with LocalEtcd() as etcd:
        etcd.stop()  # etcd is down when the workers start
        p, dns_port, http_port = start(tmp_path, etcd, processes)
        wait_until(lambda: len(health(http_port)["workers"]) == 2, 30, "the shared endpoint")  # type: ignore[arg-type]
        wait_until(lambda: all(w.get("health") for w in health(http_port)["workers"].values()),  # type: ignore
                   60, "both workers' probes")
        assert http_status(http_port, "/readyz")[0] == 503
        etcd.start()
        etcdctl(etcd.endpoint, "put", KEY, '{"host":"10.0.0.7"}')
        wait_until(lambda: http_status(http_port, "/readyz")[0] == 200, 60, "/readyz 200 once both loaded")
        assert health(http_port)["etcd"] == "connected"

        pids = worker_pids(http_port)
        os.kill(pids["0"], signal.SIGKILL)
        wait_until(lambda: http_status(http_port, "/readyz")[0] == 503, 10, "/readyz 503 with a worker dead")
        wait_until(lambda: worker_state(http_port, "0") != (pids["0"], True), 10, "the supervisor to see it exit")
        # its sockets closed with it, so the kernel sends every client to the worker still running
        assert {answer(dns_port) for _ in range(20)} == {("NOERROR", ("10.0.0.7",))}
        wait_until(lambda: http_status(http_port, "/readyz")[0] == 200, 60, "/readyz 200 after the restart")
        new_pids = worker_pids(http_port)
        assert new_pids["0"] != pids["0"] and new_pids["1"] == pids["1"]
        assert health(http_port)["workers"]["0"]["restarts"] == 1  # type: ignore[index]
        _, body = http_status(http_port, "/metrics")
        assert b'dnssync_resolver_worker_restarts_total{worker="0"} 1.0' in body
        assert {answer(dns_port) for _ in range(20)} == {("NOERROR", ("10.0.0.7",))}
        exited = [e for e in events(p) if e["event"] == "worker_exited"]
        assert len(exited) == 1 and exited[0]["worker"] == 0 and exited[0]["pid"] == pids["0"]

        assert p.stop(signal.SIGTERM) == 0
        assert all(gone(pid) for pid in new_pids.values())
    assert [e["event"] for e in events(p)][-1] == "resolver_stopped"


def test_an_address_taken_exits_2_with_one_line_before_any_worker_starts() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "resolver", "--zone", ZONE, "--workers", "2",
                               "--etcd-endpoints", "http://127.0.0.1:9", "--listen", f"127.0.0.1:{port}",
                               "--http-listen", f"127.0.0.1:{free_port()}"],
                              capture_output=True, text=True, timeout=30, cwd=Path(__file__).parents[2])
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0], done.stderr
