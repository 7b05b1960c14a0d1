"""How fast a change in etcd reaches DNS answers, how fast 100,000 records load, and the memory they take.

    .venv/bin/python bench/propagation.py [--records 100000] [--changes 1000]

Starts its own etcd (``devtools.localetcd.LocalEtcd``, temp dir, free ports) and writes ``--records`` names into
it, then starts ``dnssync-resolver`` as a real process (the console script) and times process start -> ``/readyz``
200, reads its RSS from ``/proc/<pid>/status``, and then writes ``--changes`` changes one at a time, each timed
from just before the etcd put until the resolver answers the new address over UDP (polled in a tight loop: that
is the measurement). Prints a table; every process it started is stopped at the end.

Targets (issue 3): propagation p99 < 50 ms, load < 3 s, RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from aetcd import transactions
from latency_probe import build_query, percentile  # bench/, next to this script

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # devtools/ is not installed: run from the checkout

from devtools.localetcd import LocalEtcd, free_port
from resolver.server import free_dns_port
from skydns.etcd import EtcdClient, EtcdSettings

ROOT = Path(__file__).resolve().parents[1]
TXN_OPS = 128  # etcd's default --max-txn-ops


def ip_of(i: int) -> str:
    return f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"


def answer_ips(wire: bytes, qlen: int) -> set[str]:
    """The A addresses in a response to our own query (the answer section follows the question we sent)."""
    ancount = struct.unpack("!H", wire[6:8])[0]
    pos, ips = qlen, set()
    for _ in range(ancount):
        if wire[pos] & 0xC0 == 0xC0:
            pos += 2
        else:
            while wire[pos]:
                pos += wire[pos] + 1
            pos += 1
        rtype, _, _, rdlen = struct.unpack("!HHIH", wire[pos:pos + 10])
        pos += 10
        if rtype == 1 and rdlen == 4:
            ips.add(socket.inet_ntoa(wire[pos:pos + 4]))
        pos += rdlen
    return ips


def http_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def rss_mb(pid: int) -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def load_records(client: EtcdClient, count: int) -> float:
    started = time.monotonic()
    for start in range(0, count, TXN_OPS):
        ops = [transactions.Put(f"/skydns/test/load/n{i}".encode(), f'{{"host":"{ip_of(i)}"}}'.encode())
               for i in range(start, min(start + TXN_OPS, count))]
        await client.transaction(compare=[], success=ops, failure=[])
    return time.monotonic() - started


async def propagation(client: EtcdClient, dns_port: int, changes: int, timeout: float = 5.0) -> list[float]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", dns_port))
    sock.settimeout(0.5)
    times: list[float] = []
    for i in range(changes):
        name, ip = f"p{i % 100}.prop.test.", ip_of(200_000 + i)
        wire = build_query(name, i & 0xFFFF)
        started = time.perf_counter()
        await client.put(f"/skydns/test/prop/p{i % 100}".encode(), f'{{"host":"{ip}"}}'.encode())
        while True:
            sock.send(wire)
            try:
                reply = sock.recv(4096)
            except TimeoutError:
                reply = b""
            if reply[:2] == wire[:2] and answer_ips(reply, len(wire)) == {ip}:
                break
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"change {i} ({name} -> {ip}) not visible after {timeout}s")
        times.append(time.perf_counter() - started)
    sock.close()
    return times


async def main() -> None:
    ap = argparse.ArgumentParser(description="propagation latency, load time and memory of dnssync-resolver")
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--changes", type=int, default=1000)
    args = ap.parse_args()

    with LocalEtcd() as etcd, tempfile.TemporaryDirectory(prefix="dnssync-prop-") as work:
        client = EtcdClient(EtcdSettings.from_env(etcd.endpoint, env={}))
        write_s = await load_records(client, args.records)
        for i in range(100):
            await client.put(f"/skydns/test/prop/p{i}".encode(), f'{{"host":"{ip_of(150_000 + i)}"}}'.encode())

        dns_port, http_port = free_dns_port(), free_port()
        log_path = Path(work) / "resolver.log"
        with open(log_path, "w") as log:
            started = time.monotonic()
            proc = subprocess.Popen(
                [str(ROOT / ".venv/bin/dnssync-resolver"), "--zone", "load.test.", "--zone", "prop.test.",
                 "--etcd-endpoints", etcd.endpoint, "--listen", f"127.0.0.1:{dns_port}",
                 "--http-listen", f"127.0.0.1:{http_port}", "--log-format", "json", "--log-level", "info"],
                stderr=log, stdout=subprocess.DEVNULL, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            while not http_ready(http_port):
                if proc.poll() is not None or time.monotonic() - started > 120:
                    raise RuntimeError(f"resolver did not become ready; see:\n{log_path.read_text()}")
                await asyncio.sleep(0.01)
            ready_s = time.monotonic() - started
            rss_loaded, _ = rss_mb(proc.pid)
            loaded = [json.loads(line) for line in log_path.read_text().splitlines() if '"etcd_loaded"' in line]
            mirror_load_s = loaded[0]["seconds"] if loaded else float("nan")

            times = await propagation(client, dns_port, args.changes)
            rss_after, rss_peak = rss_mb(proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            await client.close()

    ms = sorted(t * 1000 for t in times)
    print(f"\ndnssync-resolver, {args.records:,} records in etcd (written in {write_s:.1f} s), "
          f"{args.changes:,} changes one at a time")
    print(f"{'measure':<52}{'value':>12}{'target':>12}")
    rows = [
        ("start-up: process start -> /readyz 200", f"{ready_s:.2f} s", "< 3 s"),
        ("  of which the etcd read + index build (log)", f"{mirror_load_s:.2f} s", ""),
        (f"RSS with {args.records:,} records, after load", f"{rss_loaded:.0f} MB", "< 300 MB"),
        ("RSS after the changes (peak)", f"{rss_after:.0f} MB ({rss_peak:.0f})", ""),
        ("propagation etcd put -> new answer, p50", f"{statistics.median(ms):.2f} ms", ""),
        ("propagation p90", f"{percentile(ms, 90):.2f} ms", ""),
        ("propagation p99", f"{percentile(ms, 99):.2f} ms", "< 50 ms"),
        ("propagation max", f"{max(ms):.2f} ms", ""),
    ]
    for label, value, target in rows:
        print(f"{label:<52}{value:>12}{target:>12}")


if __name__ == "__main__":
    asyncio.run(main())
