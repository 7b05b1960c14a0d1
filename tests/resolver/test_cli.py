"""``dnssync-resolver`` as a user runs it: a real process, its exit codes, stderr, probes, DNS and signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from devtools.localetcd import LocalEtcd, free_port
from resolver.cli import parse_config, parse_duration
from resolver.server import free_dns_port
from tests.processes import Process, http_status, wait_until

ZONE = "skydns.test."


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "resolver", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=Path(__file__).parents[2])


@pytest.fixture
def process(tmp_path: Path) -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for p in started:
        if p.proc.poll() is None:
            p.stop(signal.SIGKILL)


def dns_ask(port: int, name: str = "www.skydns.test.") -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=2)


@pytest.mark.parametrize(("args", "message"), [
    (["--zone", ZONE, "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ([], "at least one --zone is required"),
    (["--zone", "bad..zone"], "bad..zone"),
    (["--zone", ZONE, "--listen", "nowhere"], "--listen: expected host:port"),
    (["--zone", ZONE, "--min-lease-ttl", "soon"], "not a duration"),
    (["--zone", ZONE, "--log-format", "xml"], "invalid choice: 'xml'"),
    (["--zone", ZONE, "--etcd-endpoints", "localhost:2379"], "must start with either http:// or https://"),
])
def test_bad_flags_exit_2_with_one_line(args: list[str], message: str) -> None:
    done = run_cli(*args, env={"ETCD_URLS": "", "DNSSYNC_RESOLVER_ZONE": ""})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


@pytest.mark.timeout(30)
def test_an_address_already_bound_exits_2_with_one_line() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        done = run_cli("--zone", ZONE, "--etcd-endpoints", "http://127.0.0.1:9", "--listen", f"127.0.0.1:{port}",
                       "--http-listen", f"127.0.0.1:{free_port()}")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0], done.stderr
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli("--zone", ZONE, "--etcd-endpoints", "http://127.0.0.1:9", "--listen",
                       f"127.0.0.1:{free_dns_port()}", "--http-listen", f"127.0.0.1:{port}", "--log-level", "error")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--http-listen" in lines[0], done.stderr


def test_flags_fall_back_to_the_environment() -> None:
    env = {"DNSSYNC_RESOLVER_ZONE": "a.test,B.test.", "DNSSYNC_RESOLVER_PREFIX": "/dns/",
           "DNSSYNC_RESOLVER_LISTEN": "[::1]:53", "DNSSYNC_RESOLVER_HTTP_LISTEN": "0.0.0.0:9090",
           "DNSSYNC_RESOLVER_LOG_FORMAT": "json", "DNSSYNC_RESOLVER_LOG_LEVEL": "debug",
           "DNSSYNC_RESOLVER_MAX_LEASE_TTL": "1h", "ETCD_URLS": "http://10.0.0.1:2379,http://10.0.0.2:2379"}
    config = parse_config([], env=env)
    assert config.zones == ("a.test.", "b.test.") and config.prefix == "/dns"
    assert config.listen == ("::1", 53) and config.http_listen == ("0.0.0.0", 9090)
    assert (config.log_format, config.log_level, config.max_lease_ttl) == ("json", "debug", 3600)
    assert config.etcd.endpoints == ("http://10.0.0.1:2379", "http://10.0.0.2:2379")
    flagged = parse_config(["--zone", "c.test", "--listen", "127.0.0.1:5300", "--own-records-only",
                            "--etcd-endpoints", "http://127.0.0.1:1"], env=env)
    assert flagged.zones == ("c.test.",) and flagged.listen == ("127.0.0.1", 5300) and flagged.own_records_only
    assert flagged.etcd.endpoints == ("http://127.0.0.1:1",)


@pytest.mark.parametrize(("text", "seconds"), [("30", 30), ("30s", 30), ("5m", 300), ("24h", 86400),
                                               ("1h30m", 5400), ("2d", 172800)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.timeout(90)
def test_not_ready_until_etcd_loads_then_serves_and_stops_on_sigterm(tmp_path: Path,
                                                                     process: list[Process]) -> None:
    with LocalEtcd() as etcd:
        etcd.stop()  # etcd is down when the resolver starts
        dns_port, http_port = free_dns_port(), free_port()
        p = Process(["--zone", ZONE, "--etcd-endpoints", etcd.endpoint, "--listen", f"127.0.0.1:{dns_port}",
                     "--http-listen", f"127.0.0.1:{http_port}", "--log-format", "json"], tmp_path / "err.log")
        process.append(p)
        status, _ = wait_until(lambda: http_status(http_port, "/readyz"), 15, "the probe server")
        assert status == 503
        health_status, health = http_status(http_port, "/healthz")
        assert health_status == 200 and json.loads(health)["etcd"] == "unreachable"
        assert dns_ask(dns_port).rcode() == dns.rcode.SERVFAIL
        assert p.proc.poll() is None, "etcd down at start must not stop the resolver"

        etcd.start()
        etcdctl = [str(Path(sys.executable).parent / "etcdctl"), "--endpoints", etcd.endpoint]
        subprocess.run([*etcdctl, "put", "/skydns/test/skydns/www", '{"host":"10.0.0.7"}'], check=True,
                       capture_output=True, timeout=10)
        wait_until(lambda: http_status(http_port, "/readyz")[0] == 200, 30, "/readyz 200 after the first load")
        answer = wait_until(lambda: dns_ask(dns_port).answer, 10, "an answer from etcd")
        assert [rd.to_text() for rd in answer[0]] == ["10.0.0.7"]
        assert json.loads(http_status(http_port, "/healthz")[1])["etcd"] == "connected"

        status, metrics = http_status(http_port, "/metrics")
        assert status == 200
        for name in ("dnssync_resolver_etcd_connected 1.0", "dnssync_resolver_ready 1.0",
                     "dnssync_resolver_etcd_revision", "dnssync_resolver_tcp_connections",
                     "dnssync_resolver_responses"):
            assert name.encode() in metrics, name

        assert p.stop(signal.SIGTERM) == 0
    lines = p.log.read_text().splitlines()
    events = [json.loads(line)["event"] for line in lines]  # every line is a JSON object
    assert "etcd_unreachable" in events and "etcd_loaded" in events and events[-1] == "resolver_stopped"
    assert events.count("etcd_unreachable") == 1, "one warning for the outage, not one per retry"
