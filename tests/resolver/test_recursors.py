"""Our resolver behind real recursive resolvers: each recursor's clients must get exactly what we answer.

The zone is what a user would have: ``dnssync --once`` over ``manifests/examples`` (a temporary copy, plus a
wildcard Ingress host ``*.apps.example.org`` and a Service whose hostname is the apex of a second zone,
``example.com``) and hand-written SkyDNS keys (:data:`HAND_WRITTEN`): the apex A, MX and SPF TXT of
``example.org`` under ``dns/apex``, its ``dns/ns`` key, a SkyDNS SRV set ``_sip._tcp.example.org`` with instance
keys below it, an in-zone CNAME and an SPF TXT as a per-target leaf key of the ``example.com`` apex (the
ExternalDNS layout, no ``dns/apex``).

BIND, Unbound and Knot Resolver (:mod:`tests.resolver.recursors`, isolated from every non-loopback address)
each run once per module, stubbing both zones to one ``dnssync-resolver``. Every :class:`Case` is a sequence of
questions asked in order through one recursor, its cache flushed before the first question and kept across the
rest (so an earlier answer can poison a later one, as it would for a user). Each answer through the recursor must
equal the one we give directly - same rcode, same answer RRsets (compared as sets; TTLs, AA and RA ignored) - and
is never SERVFAIL.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from devtools.localetcd import LocalEtcd, free_port
from resolver.server import free_dns_port
from skydns.etcd import EtcdClient, EtcdSettings
from skydns.record import Record, encode
from tests.processes import ROOT, Process, http_status, wait_until
from tests.resolver.recursors import RECURSORS, Recursor, Tap, Trap, Upstreams, ask

ZONES = ("example.org.", "example.com.")

HAND_WRITTEN: dict[str, Record] = {
    "/skydns/org/example/dns/apex/v4": Record(host="203.0.113.1"),
    "/skydns/org/example/dns/apex/mx": Record(host="mail.example.org", mail=True, priority=10),
    "/skydns/org/example/dns/apex/spf": Record(text="v=spf1 mx -all"),
    "/skydns/org/example/dns/ns/ns1": Record(host="203.0.113.53"),
    "/skydns/org/example/mail": Record(host="203.0.113.25"),
    "/skydns/org/example/_tcp/_sip/pbx": Record(host="203.0.113.61", port=5060, priority=10, weight=60),
    "/skydns/org/example/_tcp/_sip/backup": Record(host="sip.example.org", port=5061, priority=20, weight=40),
    "/skydns/org/example/sip": Record(host="203.0.113.62"),
    "/skydns/org/example/www": Record(host="web.example.org"),
    "/skydns/com/example/5f1e2d3c": Record(text="v=spf1 -all", targetstrip=1),
}

EXTRA_MANIFESTS = {
    "apps-wildcard.yaml": """# An Ingress for every name under apps.example.org.
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: apps, namespace: demo}
spec:
  ingressClassName: nginx
  rules:
    - host: "*.apps.example.org"
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: apps, port: {number: 80}}}}
status:
  loadBalancer:
    ingress: [{ip: 203.0.113.30}]
""",
    "example-com.yaml": """# The apex of a second zone (and www) on a load balancer, and a CNAME to a CDN.
apiVersion: v1
kind: Service
metadata:
  name: site
  namespace: demo
  annotations: {external-dns.alpha.kubernetes.io/hostname: "example.com,www.example.com"}
spec:
  type: LoadBalancer
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
status:
  loadBalancer:
    ingress: [{ip: 203.0.113.40}]
---
apiVersion: v1
kind: Service
metadata:
  name: cdn
  namespace: demo
  annotations: {external-dns.alpha.kubernetes.io/hostname: cdn.example.com}
spec:
  type: ExternalName
  externalName: cdn.example.net
""",
}


@dataclass(frozen=True)
class Case:
    """Questions (``"name TYPE"``) asked in order through one recursor, whose cache is flushed only before the
    first; ``why`` says what a wrong answer would break."""

    id: str
    questions: tuple[str, ...]
    why: str


CASES = [
    Case("apex-a-then-mx-ns-soa-caa", ("example.org. A", "example.org. MX", "example.org. NS", "example.org. SOA",
                                       "example.org. CAA"), "the website, then mail, delegation, SOA and CAA"),
    Case("apex-aaaa-then-mx", ("example.org. AAAA", "example.org. MX"), "an AAAA-first client, then mail"),
    Case("apex-txt-then-mx-ns-soa", ("example.org. TXT", "example.org. MX", "example.org. NS", "example.org. SOA"),
         "an SPF check (a CNAME in the TXT answer is cached and then answers the MX)"),
    Case("apex-mx-then-target", ("example.org. MX", "mail.example.org. A"), "mail delivery"),
    Case("apex-ns-then-glue", ("example.org. NS", "ns1.ns.dns.example.org. A"), "the delegation and its address"),
    Case("srv-minimised", ("_sip._tcp.example.org. SRV",),
         "a hand-written SRV set through QNAME minimisation (_tcp.example.org is asked first)"),
    Case("srv-after-empty-non-terminal", ("_tcp.example.org. A", "_sip._tcp.example.org. SRV"),
         "the empty non-terminal's answer is cached before the SRV"),
    Case("srv-then-targets", ("_sip._tcp.example.org. SRV", "sip.example.org. A", "pbx._sip._tcp.example.org. A"),
         "a SIP client resolving the SRV targets"),
    Case("srv-nodeport", ("_game._tcp.game.example.org. SRV", "game.example.org. A"),
         "the SRV dnssync writes for a NodePort Service"),
    Case("cname-query-then-a", ("docs.example.org. CNAME", "docs.example.org. A"),
         "a CNAME query must not leave a negative cache entry for the name (RFC 2308)"),
    Case("a-then-cname-query", ("docs.example.org. A", "docs.example.org. CNAME"), "an ExternalName Service"),
    Case("in-zone-cname", ("www.example.org. CNAME", "www.example.org. A", "www.example.org. AAAA"),
         "a hand-written CNAME to a name in the zone"),
    Case("wildcard", ("foo.apps.example.org. A", "foo.apps.example.org. AAAA", "bar.apps.example.org. A"),
         "a wildcard Ingress host (RFC 4592)"),
    Case("wildcard-deeper-and-parent", ("a.b.apps.example.org. A", "apps.example.org. A"),
         "synthesis below the wildcard's parent, and the parent itself"),
    Case("nxdomain", ("nope.example.org. A", "nope.example.org. AAAA", "below.nope.example.org. A"),
         "names that do not exist"),
    Case("nxdomain-then-existing", ("nope.example.org. A", "x.web.example.org. A", "web.example.org. A"),
         "a negative answer must not hide names that exist (RFC 8020)"),
    Case("soa-below-apex", ("shop.example.org. SOA", "shop.example.org. A"),
         "DNS UPDATE and ACME DNS-01 clients find the zone by asking SOA at a name below it"),
    Case("soa-of-missing-name", ("nope.example.org. SOA",), "an SOA question for a name that does not exist"),
    Case("ns-below-apex", ("shop.example.org. NS", "shop.example.org. A"), "NS is only at the apex"),
    Case("names", ("web.example.org. A", "shop.example.org. A", "api.example.org. A", "game.example.org. A"),
         "the example Services and Ingresses"),
    Case("any-label", ("any.example.org. A",), "a label that happens to be 'any'"),
    Case("com-apex-a-then-mx-ns-soa-caa", ("example.com. A", "example.com. MX", "example.com. NS",
                                           "example.com. SOA", "example.com. CAA"),
         "an apex written by dnssync (per-target leaf keys) beside a CNAME to another domain"),
    Case("com-apex-txt-then-a", ("example.com. TXT", "example.com. A"), "an SPF TXT written as an apex leaf key"),
    Case("com-names", ("www.example.com. A", "cdn.example.com. A", "cdn.example.com. CNAME"),
         "names below the second apex"),
]


# --- the zone and our resolver -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def zone_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEtcd]:
    """An etcd of this module's own, holding the zone: dnssync --once over the examples plus HAND_WRITTEN."""
    manifests = tmp_path_factory.mktemp("manifests")
    shutil.copytree(ROOT / "manifests" / "examples", manifests, dirs_exist_ok=True)
    for name, text in EXTRA_MANIFESTS.items():
        (manifests / name).write_text(text)
    with LocalEtcd() as etcd:
        done = subprocess.run([sys.executable, "-m", "syncer", "--once", "--owner-id", "t", "--policy", "sync",
                               "--from-manifests", str(manifests), "--etcd-endpoints", etcd.endpoint,
                               "--log-level", "warning"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                              env={k: v for k, v in os.environ.items() if not k.startswith(("DNSSYNC_", "ETCD_"))})
        assert done.returncode == 0, done.stdout + done.stderr
        asyncio.run(write_keys(etcd.endpoint, HAND_WRITTEN))
        yield etcd


async def write_keys(endpoint: str, records: dict[str, Record]) -> None:
    client = EtcdClient(EtcdSettings.from_env(endpoint, env={}))
    await client.connect()
    try:
        for key, record in records.items():
            await client.put(key.encode(), encode(record))
    finally:
        await client.close()


@pytest.fixture(scope="module")
def ours(zone_etcd: LocalEtcd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """``dnssync-resolver`` for ZONES, loaded and ready; its DNS port on 127.0.0.1."""
    dns_port, http_port = free_dns_port(), free_port()
    zones = [arg for zone in ZONES for arg in ("--zone", zone)]
    process = Process([*zones, "--etcd-endpoints", zone_etcd.endpoint, "--listen", f"127.0.0.1:{dns_port}",
                       "--http-listen", f"127.0.0.1:{http_port}", "--log-level", "warning"],
                      tmp_path_factory.mktemp("resolver") / "stderr.log")
    try:
        wait_until(lambda: process.proc.poll() is None and http_status(http_port, "/readyz")[0] == 200, 30,
                   f"dnssync-resolver ready ({process.log})")
        yield dns_port
    finally:
        process.stop()


@pytest.fixture(scope="module")
def trap() -> Iterator[Trap]:
    """Every name outside ZONES goes here (NODATA); nothing is ever looked up off the machine."""
    running = Trap().start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def tap(ours: int) -> Iterator[Tap]:
    """What the recursors ask our resolver goes through this relay, which records the questions."""
    running = Tap(ours).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module", params=sorted(RECURSORS))
def recursor(request: pytest.FixtureRequest, tap: Tap, trap: Trap) -> Iterator[Recursor]:
    kind = RECURSORS[request.param]
    reason = kind.missing()
    if reason:
        pytest.skip(reason)
    running = kind(Upstreams(ZONES, tap.port, trap.port)).start()
    try:
        yield running
    finally:
        running.stop()


# --- comparing answers ---------------------------------------------------------------------------------------

Answer = tuple[str, frozenset[tuple[str, str, str]]]  # rcode, {(owner, type, rdata)}


def answer_of(port: int, question: str) -> Answer:
    name, rdtype = question.split()
    try:
        response = ask(port, name, rdtype)
    except (dns.exception.DNSException, OSError) as exc:
        return f"no answer ({type(exc).__name__})", frozenset()
    return dns.rcode.to_text(response.rcode()), frozenset(
        (rrset.name.to_text().lower(), dns.rdatatype.to_text(rrset.rdtype),
         rr.to_text() if rrset.rdtype == dns.rdatatype.TXT else rr.to_text().lower())
        for rrset in response.answer for rr in rrset)


def show(answer: Answer) -> str:
    rcode, records = answer
    return " | ".join([rcode, *(" ".join(r) for r in sorted(records))])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_recursor_clients_get_our_answers(recursor: Recursor, ours: int, case: Case) -> None:
    recursor.flush()
    log_start = recursor.log_size()
    wrong = []
    for step, question in enumerate(case.questions, 1):
        direct = answer_of(ours, question)
        through = answer_of(recursor.port, question)
        if through != direct or through[0] == "SERVFAIL":
            wrong.append(f"  {step}. {question}\n     {recursor.name}: {show(through)}\n     ours:   {show(direct)}")
    logged = recursor.log_since(log_start) if wrong else ""
    if logged:
        wrong.append(f"  {recursor.name} logged:\n{logged}")
    assert not wrong, f"{case.id} ({case.why}):\n" + "\n".join(wrong)


def test_other_names_reach_only_the_trap(recursor: Recursor, trap: Trap) -> None:
    """A name outside our zones is answered by the loopback trap (so never looked up on the internet), and no
    question for our zones ever goes anywhere but our resolver."""
    recursor.flush()
    rcode, records = answer_of(recursor.port, "www.example.net. A")
    assert (rcode, records) == ("NOERROR", frozenset())
    assert ("www.example.net.", "A") in trap.questions
    leaked = [q for q in trap.questions if any(q[0] == z or q[0].endswith("." + z) for z in ZONES)]
    assert not leaked, leaked


def test_minimising_recursors_ask_the_empty_non_terminal_first(recursor: Recursor, tap: Tap) -> None:
    """The minimisation cases are really exercised: the recursor asks ``_tcp.example.org`` before the SRV name."""
    if not recursor.minimises:
        pytest.skip(f"{recursor.name} sends whole questions to a stub zone (no QNAME minimisation there)")
    recursor.flush()
    tap.questions.clear()
    answer_of(recursor.port, "_sip._tcp.example.org. SRV")
    names = [name for name, _ in tap.questions]
    assert "_tcp.example.org." in names, names
    assert "_sip._tcp.example.org." not in names[:names.index("_tcp.example.org.")], tap.questions
