"""Zone transfers: AXFR time and memory for big zones, and etcd write -> a secondary answers it.

    .venv/bin/python bench/transfers.py [--sizes 10000,100000] [--changes 200]

For each size: starts its own etcd (``devtools.localetcd.LocalEtcd``), writes that many names into one zone,
starts ``dnssync-resolver`` as a real process with ``--allow-transfer 127.0.0.1/32``, waits until the zone is
built (the ``zone_built`` log line), then times one AXFR with ``kdig`` (process start to exit, the whole zone
received) and reads the resolver's RSS and its peak (``VmHWM``, reset just before the transfer through
``/proc/<pid>/clear_refs``, so the peak is the transfer's own).

Then, with a 1,000-name zone, the secondaries of ``tests.resolver.secondaries`` (Knot DNS and BIND, those that
are installed) follow the resolver (``--notify`` to them, TSIG); ``--changes`` changes are made one at a time,
each timed from just before the etcd put until each secondary answers the new address over UDP (polled in a
tight loop); it also prints how many NOTIFYs were not acknowledged at once, which transfers the secondaries
logged for the changes (IXFR or AXFR), and which changes took over 200 ms. Prints a table; every process it
started is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aetcd import transactions
from latency_probe import build_query, percentile  # bench/, next to this script
from propagation import answer_ips, http_ready, ip_of, rss_mb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # devtools/ and tests/ are not installed

from devtools.localetcd import LocalEtcd, free_port
from resolver.server import free_dns_port
from skydns.etcd import EtcdClient, EtcdSettings
from tests.resolver.secondaries import KNOTD, NAMED, TSIG_FLAG, Bind, Knot, Secondary, missing

ROOT = Path(__file__).resolve().parents[1]
ZONE = "xfr.test."
TXN_OPS = 128


async def load_records(client: EtcdClient, count: int) -> None:
    await client.put(b"/skydns/test/xfr/dns/ns/ns1", b'{"host":"10.255.0.53"}')
    for start in range(0, count, TXN_OPS):
        ops = [transactions.Put(f"/skydns/test/xfr/n{i}/1a2b3c4d".encode(),
                                f'{{"host":"{ip_of(i)}","targetstrip":1}}'.encode())
               for i in range(start, min(start + TXN_OPS, count))]
        await client.transaction(compare=[], success=ops, failure=[])


class ResolverProcess:
    def __init__(self, endpoint: str, work: Path, extra: list[str]) -> None:
        self.dns_port, self.http_port = free_dns_port(), free_port()
        self.log_path = work / f"resolver-{self.dns_port}.log"
        self.argv = [str(ROOT / ".venv/bin/dnssync-resolver"), "--zone", ZONE, "--etcd-endpoints", endpoint,
                     "--listen", f"127.0.0.1:{self.dns_port}", "--http-listen", f"127.0.0.1:{self.http_port}",
                     "--log-format", "json", "--allow-transfer", "127.0.0.1/32", *extra]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(self.argv, stderr=log, stdout=subprocess.DEVNULL, cwd=ROOT,
                                         env={**os.environ, "PYTHONPATH": str(ROOT)})

    def events(self, name: str) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if f'"{name}"' in line]

    async def wait_built(self, timeout: float = 300) -> dict[str, object]:
        started = time.monotonic()
        while True:
            built = self.events("zone_built")
            if built and http_ready(self.http_port):
                return built[-1]
            assert self.proc is not None
            if self.proc.poll() is not None or time.monotonic() - started > timeout:
                raise RuntimeError(f"resolver not ready; see\n{self.log_path.read_text()[-3000:]}")
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def axfr(port: int) -> tuple[float, int, int, int]:
    """One AXFR with kdig: (seconds, records, messages, bytes). SERVFAIL (the serials not final yet, right after
    the start) is retried."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return _axfr_once(port)
        except RuntimeError as exc:
            if "SERVFAIL" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _axfr_once(port: int) -> tuple[float, int, int, int]:
    started = time.perf_counter()
    done = subprocess.run(["kdig", "@127.0.0.1", "-p", str(port), "AXFR", ZONE, "+noall", "+stats"],
                          capture_output=True, text=True, check=False, timeout=600)
    seconds = time.perf_counter() - started
    out = done.stdout
    if done.returncode:
        raise RuntimeError(f"kdig failed: {done.stdout[-500:]} {done.stderr[-500:]}")
    line = next(line for line in out.splitlines() if "Received" in line)  # ;; Received B B (M messages, R records)
    size = int(line.split("Received ")[1].split()[0])
    messages = int(line.split("(")[1].split()[0])
    records = int(line.split("messages, ")[1].split()[0])
    return seconds, records, messages, size


async def axfr_size(count: int) -> dict[str, float]:
    with LocalEtcd() as etcd, tempfile.TemporaryDirectory(prefix="dnssync-xfr-") as work:
        client = EtcdClient(EtcdSettings.from_env(etcd.endpoint, env={}))
        await load_records(client, count)
        resolver = ResolverProcess(etcd.endpoint, Path(work), [])
        resolver.start()
        try:
            built = await resolver.wait_built()
            assert resolver.proc is not None
            rss_before, _ = rss_mb(resolver.proc.pid)
            Path(f"/proc/{resolver.proc.pid}/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            seconds, records, messages, size = await asyncio.to_thread(axfr, resolver.dns_port)
            rss_after, peak = rss_mb(resolver.proc.pid)
        finally:
            resolver.stop()
            await client.close()
    return {"names": count, "build_s": float(built["seconds"]), "axfr_s": seconds,  # type: ignore[arg-type]
            "records": records, "messages": messages, "bytes": size, "rss_before": rss_before, "peak": peak,
            "rss_after": rss_after}


def poll_udp(address: tuple[str, int], name: str, ip: str, qid: int) -> bool:
    wire = build_query(name, qid)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        sock.sendto(wire, address)
        try:
            reply = sock.recv(4096)
        except TimeoutError:
            return False
    return reply[:2] == wire[:2] and answer_ips(reply, len(wire)) == {ip}


async def follow_changes(changes: int) -> dict[str, list[float]]:
    kinds = [cls for cls, binary in ((Knot, KNOTD), (Bind, NAMED)) if missing(binary) is None]
    with LocalEtcd() as etcd, tempfile.TemporaryDirectory(prefix="dnssync-xfr-") as work:
        client = EtcdClient(EtcdSettings.from_env(etcd.endpoint, env={}))
        await load_records(client, 1000)
        port = free_dns_port()
        secondaries: list[Secondary] = [cls(("127.0.0.1", port), [ZONE]) for cls in kinds]
        notify = ",".join(f"127.0.0.1:{s.port}" for s in secondaries)
        resolver = ResolverProcess(etcd.endpoint, Path(work), ["--tsig-key", TSIG_FLAG, "--notify", notify])
        resolver.dns_port = port
        resolver.argv[resolver.argv.index("--listen") + 1] = f"127.0.0.1:{port}"
        resolver.start()
        times: dict[str, list[float]] = {s.kind: [] for s in secondaries}
        try:
            await resolver.wait_built()
            for s in secondaries:
                s.start()
            revision = (await client.put(b"/skydns/test/xfr/ready", b'{"host":"10.254.0.1"}')).header.revision
            for s in secondaries:
                await s.wait_serial(ZONE.rstrip("."), revision, timeout=60)
            before = {s.kind: len(s.transfers(ZONE)) for s in secondaries}
            for i in range(changes):
                name, ip = f"p{i % 50}.xfr.test.", ip_of(300_000 + i)
                started = time.perf_counter()
                await client.put(f"/skydns/test/xfr/p{i % 50}".encode(), f'{{"host":"{ip}"}}'.encode())
                waiting = list(secondaries)
                while waiting:
                    for s in list(waiting):
                        if await asyncio.to_thread(poll_udp, s.address, name, ip, i & 0xFFFF):
                            times[s.kind].append(time.perf_counter() - started)
                            waiting.remove(s)
                    if time.perf_counter() - started > 30:
                        raise TimeoutError(f"change {i} not seen by {[s.kind for s in waiting]}")
            ixfr = {s.kind: s.transfers(ZONE)[before[s.kind]:] for s in secondaries}
            sent = resolver.events("notify_sent")
            failed = [e for e in sent if e.get("result") != "ok"]
            print(f"  NOTIFYs sent: {len(sent)}, not acknowledged at once: {len(failed)} "
                  f"({', '.join(sorted({str(e.get('result')) for e in failed}))})")
        finally:
            for s in secondaries:
                s.stop()
            resolver.stop()
            await client.close()
    for kind, kinds_seen in ixfr.items():
        axfrs, ixfrs = kinds_seen.count("AXFR"), kinds_seen.count("IXFR")
        print(f"  {kind}: {len(kinds_seen)} transfers after the first sync: {axfrs} AXFR, {ixfrs} IXFR")
    return times


async def main() -> None:
    ap = argparse.ArgumentParser(description="AXFR time/memory and etcd -> secondary propagation")
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--changes", type=int, default=200)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    results = [await axfr_size(n) for n in sizes]
    follow = await follow_changes(args.changes) if args.changes else {}

    print(f"\n{'AXFR of one zone (kdig)':<34}" + "".join(f"{r['names']:>14,.0f} names" for r in results))
    rows = [
        ("records sent (SOA twice incl.)", lambda r: f"{r['records']:,.0f}"),
        ("messages / bytes", lambda r: f"{r['messages']:,.0f} / {r['bytes'] / 1e6:.1f} MB"),
        ("zone build after load (log)", lambda r: f"{r['build_s']:.2f} s"),
        ("AXFR time, kdig start -> exit", lambda r: f"{r['axfr_s']:.2f} s"),
        ("resolver RSS before the AXFR", lambda r: f"{r['rss_before']:.0f} MB"),
        ("resolver peak RSS during it", lambda r: f"{r['peak']:.0f} MB"),
    ]
    for label, cell in rows:
        print(f"{label:<34}" + "".join(f"{cell(r):>20}" for r in results))
    if follow:
        print(f"\netcd put -> secondary answers the new address (UDP), {args.changes} changes one at a time")
        print(f"{'secondary':<12}{'p50':>10}{'p99':>10}{'max':>10}")
        for kind, times in follow.items():
            slow = [i for i, t in enumerate(times) if t > 0.2]
            if slow:
                print(f"  ({kind}: changes over 200 ms: {slow[:10]})")
            ms = sorted(t * 1000 for t in times)
            print(f"{kind:<12}{statistics.median(ms):>8.1f}ms{percentile(ms, 99):>8.1f}ms{ms[-1]:>8.1f}ms")


if __name__ == "__main__":
    asyncio.run(main())
