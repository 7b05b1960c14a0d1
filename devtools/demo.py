"""``make demo``: the whole product on an embedded default, in one command, leaving nothing running.

1. starts a throwaway local etcd (the venv's ``etcd``) and writes two records dnssync does not own (a
   hand-written one, another cluster's), which must come through untouched;
2. runs ``dnssync --once`` (the real CLI, as a subprocess) over ``manifests/examples/`` and prints its plan;
3. starts ``dnssync-resolver`` (subprocess) for ``example.org.`` on free loopback ports and waits for ``/readyz``;
4. asks it, over UDP with dnspython, for every record the syncer wrote, and prints the answers;
5. a live change: starts ``dnssync`` continuously over a copy of ``manifests/examples/`` in a temporary folder
   (same etcd, same owner, so its first full sync finds nothing to change), waits for its ``/readyz``, saves a new
   load-balancer IP into the copy of ``web-loadbalancer.yaml`` the way editors do (a temporary file renamed over
   it), polls the resolver until the new address is the answer and prints before, after and the delay from the
   file write to that answer; more than ``LIVE_TIMEOUT`` seconds is a failure;
6. stops everything it started (also on errors or Ctrl-C); dnssync with SIGTERM, which must exit 0 within
   ``STOP_TIMEOUT`` seconds.

Exit code 0 when every name answered and the live change showed; 1 otherwise, with a line saying what failed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import yaml

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
LIVE_FILE = "web-loadbalancer.yaml"  # a LoadBalancer Service: its status IP is the A record's target
HOSTNAME_ANNOTATION = "external-dns.alpha.kubernetes.io/hostname"
NEW_IP = "203.0.113.11"
LIVE_TIMEOUT = 10.0  # seconds from the file write until the new answer must be served
POLL_SECONDS = 0.002
STOP_TIMEOUT = 10.0


def banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def syncer_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DNSSYNC_")}


def run_syncer(endpoint: str) -> int:
    cmd = [sys.executable, "-m", "syncer", "--once", "--owner-id", OWNER, "--policy", "sync",
           "--from-manifests", str(EXAMPLES), "--etcd-endpoints", endpoint, "--log-level", "warning"]
    banner("dnssync " + " ".join(cmd[3:]))
    done = subprocess.run(cmd, cwd=ROOT, env=syncer_env(), text=True, capture_output=True, timeout=120)
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


def addresses(port: int, name: str) -> tuple[str, ...]:
    """The A addresses the resolver answers for ``name`` right now (empty when none or no answer)."""
    request = dns.message.make_query(name + ".", "A")
    try:
        response = dns.query.udp(request, "127.0.0.1", port=port, timeout=1)
    except (dns.exception.Timeout, OSError):
        return ()
    return tuple(sorted(rr.address for rrset in response.answer if rrset.rdtype == dns.rdatatype.A
                        for rr in rrset))


Procs = list[tuple[str, subprocess.Popen[bytes]]]  # what the demo started, by name, in start order


def stop(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> int | None:
    """SIGTERM, then wait; the exit code, or None when it had to be killed."""
    if proc.poll() is not None:
        return proc.returncode
    proc.terminate()
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def start_resolver(endpoint: str, procs: Procs) -> int | None:
    """Start dnssync-resolver and wait for ``/readyz``; its DNS port, or None (after saying why)."""
    dns_port, http_port = free_dns_port(), free_port()
    cmd = [sys.executable, "-m", "resolver", "--zone", ZONE, "--etcd-endpoints", endpoint,
           "--listen", f"127.0.0.1:{dns_port}", "--http-listen", f"127.0.0.1:{http_port}", "--log-level", "warning"]
    banner("dnssync-resolver " + " ".join(cmd[3:]))
    try:
        resolver = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL)
    except OSError as exc:
        print(f"could not start the resolver ({exc}); the records above are what it would serve")
        return None
    procs.append(("the resolver", resolver))
    if not wait_ready(resolver, http_port):
        print("the resolver did not become ready; the records above are what it would serve")
        return None
    print(f"ready: DNS on 127.0.0.1:{dns_port} (UDP+TCP), probes on http://127.0.0.1:{http_port}/readyz")
    return dns_port


def ask_every_name(dns_port: int, records: list[CurrentRecord]) -> int:
    """Ask for every record the syncer wrote and print the answers; the number of names without one."""
    banner(f"asking the resolver (dig @127.0.0.1 -p {dns_port} <name> <type>)")
    asked = sorted({(r.name, r.type) for r in records}, key=lambda nt: (tuple(reversed(nt[0].split("."))), nt[1]))
    failures = 0
    for name, rtype in asked:
        # A CNAME is asked for as clients do, with an A query (CoreDNS, and our resolver with it, answers
        # explicit CNAME queries only from a record at the bare name key, not from per-target leaf keys).
        qtype = "A" if rtype == "CNAME" else rtype
        answer = query(dns_port, name, qtype)
        failures += not answer.startswith("NOERROR") or "(no records)" in answer
        print(f"  {name} {qtype}: {answer}")
    return failures


def one_shot(etcd: LocalEtcd, procs: Procs) -> int | None:
    """Steps 1-4; the resolver's DNS port when every name answered, else None (after saying why)."""
    asyncio.run(seed(etcd.endpoint))
    print("seeded records dnssync does not own (a hand-written one and another cluster's):")
    for key, record in HAND_WRITTEN.items():
        print(f"  {key}  {encode(record).decode()}")
    if run_syncer(etcd.endpoint) != 0:
        print("dnssync failed; see the message above", file=sys.stderr)
        return None
    records = asyncio.run(read_records(etcd.endpoint))
    banner(f"{len(records)} records in etcd under /skydns/")
    print_records(records)
    untouched = {r.key for r in records if r.key in HAND_WRITTEN and r.record == HAND_WRITTEN[r.key]}
    print(f"records not ours, untouched: {len(untouched)} of {len(HAND_WRITTEN)}")
    dns_port = start_resolver(etcd.endpoint, procs)
    if dns_port is None:
        return None
    failures = ask_every_name(dns_port, records)
    if failures:
        print(f"{failures} name(s) without an answer")
        return None
    print("every name answered")
    return dns_port


def save_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as editors and kubectl do: a temporary file renamed over it."""
    tmp = path.with_name(f".{path.name}.tmp")  # hidden: the folder watch skips it
    tmp.write_text(text)
    os.replace(tmp, path)


def live_target(path: Path) -> tuple[str, str]:
    """``(name, IP)``: the hostname annotation and the first status load-balancer IP of the example Service."""
    doc = yaml.safe_load(path.read_text())
    return doc["metadata"]["annotations"][HOSTNAME_ANNOTATION], doc["status"]["loadBalancer"]["ingress"][0]["ip"]


def wait_for_answer(dns_port: int, name: str, want: tuple[str, ...], since: float) -> float | None:
    """Poll the resolver until ``name`` answers exactly ``want``; seconds after ``since``, or None at the deadline."""
    while time.perf_counter() - since < LIVE_TIMEOUT:
        if addresses(dns_port, name) == want:
            return time.perf_counter() - since
        time.sleep(POLL_SECONDS)  # polling a condition with a deadline, not synchronising on time
    return None


def live_change(endpoint: str, dns_port: int, workdir: Path, procs: Procs) -> float | None:
    """Step 5: the delay in seconds from a manifest edit to the new DNS answer, or None (after saying why)."""
    folder = workdir / "examples"
    shutil.copytree(EXAMPLES, folder)
    http_port = free_port()
    cmd = [sys.executable, "-m", "syncer", "--owner-id", OWNER, "--policy", "sync", "--from-manifests",
           str(folder), "--etcd-endpoints", endpoint, "--http-listen", f"127.0.0.1:{http_port}",
           "--log-level", "warning"]
    banner("live change: dnssync (continuous, watching a copy of manifests/examples)")
    print("dnssync " + " ".join(cmd[3:]))
    syncer = subprocess.Popen(cmd, cwd=ROOT, env=syncer_env(), stdin=subprocess.DEVNULL)
    procs.append(("dnssync", syncer))
    if not wait_ready(syncer, http_port):
        print("dnssync did not become ready (see its messages above)")
        return None
    print(f"ready: http://127.0.0.1:{http_port}/readyz (metrics on /metrics)")

    path = folder / LIVE_FILE
    name, old_ip = live_target(path)
    before = addresses(dns_port, name)
    print(f"before: {name} A {' '.join(before) or '(no answer)'}")
    if before != (old_ip,):
        print(f"expected {name} A {old_ip} from the one-shot sync")
        return None
    text = path.read_text()
    if text.count(f"ip: {old_ip}") != 1:
        print(f"can't edit {path}: 'ip: {old_ip}' is not in it exactly once")
        return None
    written = time.perf_counter()
    save_atomically(path, text.replace(f"ip: {old_ip}", f"ip: {NEW_IP}"))
    print(f"edited {LIVE_FILE} in the copy: status.loadBalancer.ingress ip {old_ip} -> {NEW_IP}")
    delay = wait_for_answer(dns_port, name, (NEW_IP,), written)
    if delay is None:
        print(f"the change did not show in DNS within {LIVE_TIMEOUT:.0f} s: {name} A still answers "
              f"{' '.join(addresses(dns_port, name)) or '(nothing)'}")
        return None
    print(f"after:  {name} A {' '.join(addresses(dns_port, name))}  "
          f"({delay * 1000:.1f} ms from the file write to the DNS answer)")

    asked = time.perf_counter()
    code = stop(syncer, STOP_TIMEOUT)
    if code != 0:
        why = f"still running after {STOP_TIMEOUT:.0f} s, killed" if code is None else f"exit code {code}"
        print(f"dnssync did not stop cleanly on SIGTERM: {why}")
        return None
    print(f"stopped dnssync with SIGTERM: exit code 0 after {(time.perf_counter() - asked) * 1000:.0f} ms")
    return delay


def main() -> int:
    procs: Procs = []
    etcd = LocalEtcd()
    workdir = Path(tempfile.mkdtemp(prefix="dnssync-demo-"))
    try:
        banner("starting a local etcd")
        etcd.start()
        print(f"etcd at {etcd.endpoint}")
        dns_port = one_shot(etcd, procs)
        if dns_port is None:
            banner("failed: see above")
            return 1
        delay = live_change(etcd.endpoint, dns_port, workdir, procs)
        if delay is None:
            banner("failed: see above")
            return 1
        banner(f"done: every name answered, and the edit was served {delay * 1000:.1f} ms after the file write")
        return 0
    finally:
        stopped = []
        for name, proc in reversed(procs):
            if proc.poll() is None:
                stop(proc)
                stopped.append(name)
        etcd.close()
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"stopped {', '.join(stopped) + ' and ' if stopped else ''}etcd")


if __name__ == "__main__":
    sys.exit(main())
