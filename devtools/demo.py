"""``make demo``: the whole product on an embedded default, in one command, leaving nothing running.

1. starts a throwaway local etcd (the venv's ``etcd``) and writes two records dnssync does not own (a
   hand-written one, another cluster's), which must come through untouched;
2. runs ``dnssync --once`` (the real CLI, as a subprocess) over ``manifests/examples/`` and prints its plan;
3. starts ``dnssync-resolver`` (subprocess) for ``example.org.`` on free loopback ports and waits for ``/readyz``;
4. asks it, over UDP with dnspython, for every record the syncer wrote, and prints the answers;
5. stops everything it started (also on errors or Ctrl-C).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from devtools.localetcd import LocalEtcd, free_port
from resolver.server import free_dns_port
from skydns.etcd import EtcdClient, EtcdSettings
from skydns.record import Record, encode
from syncer.current import CurrentRecord
from syncer.etcd.state import read_current

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "manifests" / "examples"
ZONE = "example.org."
OWNER = "demo"
READY_TIMEOUT = 30.0


def banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def run_syncer(endpoint: str) -> int:
    cmd = [sys.executable, "-m", "syncer", "--once", "--owner-id", OWNER, "--policy", "sync",
           "--from-manifests", str(EXAMPLES), "--etcd-endpoints", endpoint, "--log-level", "warning"]
    banner("dnssync " + " ".join(cmd[3:]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DNSSYNC_")}
    done = subprocess.run(cmd, cwd=ROOT, env=env, text=True, capture_output=True, timeout=120)
    print(done.stdout.rstrip())
    if done.stderr.strip():
        print(done.stderr.rstrip(), file=sys.stderr)
    print(f"(exit code {done.returncode})")
    return done.returncode


HAND_WRITTEN = {  # records somebody else wrote; dnssync must leave them exactly as they are
    "/skydns/org/example/legacy": Record(host="192.0.2.1"),
    "/skydns/org/example/legacy2/2f3e4d5c": Record(host="192.0.2.2", targetstrip=1, owner="another-cluster"),
}


async def seed(endpoint: str) -> None:
    client = EtcdClient(EtcdSettings.from_env(endpoint, env={}))
    try:
        for key, record in HAND_WRITTEN.items():
            await client.put(key.encode(), encode(record))
    finally:
        await client.close()


async def read_records(endpoint: str) -> list[CurrentRecord]:
    client = EtcdClient(EtcdSettings.from_env(endpoint, env={}))
    try:
        return (await read_current(client, "/skydns")).records
    finally:
        await client.close()


def wait_ready(proc: subprocess.Popen[bytes], http_port: int) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)  # polling a condition with a deadline, not synchronising on time
    return False


def query(port: int, name: str, rtype: str) -> str:
    request = dns.message.make_query(name + ".", rtype)
    try:
        response = dns.query.udp(request, "127.0.0.1", port=port, timeout=2)
    except (dns.exception.Timeout, OSError) as exc:
        return f"no answer ({type(exc).__name__})"
    rcode = dns.rcode.to_text(response.rcode())
    lines = [f"{rrset.name} {rrset.ttl} {dns.rdatatype.to_text(rrset.rdtype)} {rr.to_text()}"
             for rrset in response.answer for rr in rrset]
    return "\n      ".join([f"{rcode}", *lines]) if lines else f"{rcode} (no records)"


def print_records(records: list[CurrentRecord]) -> None:
    for rec in records:
        print(f"  {rec.key}  {rec.type} {rec.target}  owner={rec.owner} resource={rec.resource}")


def main() -> int:
    resolver: subprocess.Popen[bytes] | None = None
    etcd = LocalEtcd()
    try:
        banner("starting a local etcd")
        etcd.start()
        print(f"etcd at {etcd.endpoint}")
        asyncio.run(seed(etcd.endpoint))
        print("seeded records dnssync does not own (a hand-written one and another cluster's):")
        for key, record in HAND_WRITTEN.items():
            print(f"  {key}  {encode(record).decode()}")
        if run_syncer(etcd.endpoint) != 0:
            print("dnssync failed; see the message above", file=sys.stderr)
            return 1
        records = asyncio.run(read_records(etcd.endpoint))
        banner(f"{len(records)} records in etcd under /skydns/")
        print_records(records)
        untouched = {r.key for r in records if r.key in HAND_WRITTEN and r.record == HAND_WRITTEN[r.key]}
        print(f"records not ours, untouched: {len(untouched)} of {len(HAND_WRITTEN)}")

        dns_port, http_port = free_dns_port(), free_port()
        cmd = [sys.executable, "-m", "resolver", "--zone", ZONE, "--etcd-endpoints", etcd.endpoint,
               "--listen", f"127.0.0.1:{dns_port}", "--http-listen", f"127.0.0.1:{http_port}",
               "--log-level", "warning"]
        banner("dnssync-resolver " + " ".join(cmd[3:]))
        try:
            resolver = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL)
        except OSError as exc:
            print(f"could not start the resolver ({exc}); the records above are what it would serve")
            return 1
        if not wait_ready(resolver, http_port):
            print("the resolver did not become ready; the records above are what it would serve")
            return 1
        print(f"ready: DNS on 127.0.0.1:{dns_port} (UDP+TCP), probes on http://127.0.0.1:{http_port}/readyz")

        banner(f"asking the resolver (dig @127.0.0.1 -p {dns_port} <name> <type>)")
        asked = sorted({(r.name, r.type) for r in records},
                       key=lambda nt: (tuple(reversed(nt[0].split("."))), nt[1]))
        failures = 0
        for name, rtype in asked:
            # A CNAME is asked for as clients do, with an A query (CoreDNS, and our resolver with it, answers
            # explicit CNAME queries only from a record at the bare name key, not from per-target leaf keys).
            qtype = "A" if rtype == "CNAME" else rtype
            answer = query(dns_port, name, qtype)
            failures += not answer.startswith("NOERROR") or "(no records)" in answer
            print(f"  {name} {qtype}: {answer}")
        banner("done: " + ("every name answered" if not failures else f"{failures} name(s) without an answer"))
        return 0 if not failures else 1
    finally:
        if resolver is not None and resolver.poll() is None:
            resolver.terminate()
            try:
                resolver.wait(timeout=5)
            except subprocess.TimeoutExpired:
                resolver.kill()
                resolver.wait()
        etcd.stop()
        print("stopped the resolver and etcd")


if __name__ == "__main__":
    sys.exit(main())
