"""The resolver's query table, in the style of CoreDNS's etcd plugin tests.

``FIXTURE`` is (etcd key, JSON value) pairs under ``/skydns``; ``ZONES`` the zones to serve; ``CASES`` the
questions and the expected rcode and sections, with RRs as zone-file lines. :func:`check` compares a parsed
``dns.message.Message`` with a case, order-insensitively (RRsets sorted, names compared case-insensitively,
the SOA serial ignored unless a value is given). Nothing here depends on how the answer was produced, so the
same table runs against the in-memory answerer and against the real server over UDP/TCP.

Comments name the CoreDNS fixture case a row mirrors (``plugin/etcd/*_test.go``) where there is one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype

ZONES = ["skydns.test.", "other.test.", "0.10.in-addr.arpa."]
PREFIX = "/skydns"


def _v(**fields: object) -> str:
    return json.dumps(fields, separators=(",", ":"))


LONG_TEXT = "x" * 255 + "y" * 45
EXTDNS_OWNER_TEXT = '"heritage=external-dns,external-dns/owner=default,external-dns/resource=service/default/web"'

FIXTURE: list[tuple[str, str]] = [
    # plain A / AAAA
    ("/skydns/test/skydns/a", _v(host="10.0.0.1")),
    ("/skydns/test/skydns/dual/x1", _v(host="10.0.0.2", ttl=60)),
    ("/skydns/test/skydns/dual/x2", _v(host="2001:db8::2", ttl=60)),
    ("/skydns/test/skydns/v6only", _v(host="2001:db8::6")),
    # ExternalDNS-style per-target leaf keys (targetstrip 1) and a deeper subtree
    ("/skydns/test/skydns/web/1a2b3c4d", _v(host="10.0.1.1", targetstrip=1)),
    ("/skydns/test/skydns/web/5e6f7a8b", _v(host="10.0.1.2", targetstrip=1)),
    ("/skydns/test/skydns/deep/x/y/z", _v(host="10.0.2.1")),
    # the exact key is not returned when subkeys exist (cname-d02's region2)
    ("/skydns/test/skydns/region2", _v(host="10.0.3.9")),
    ("/skydns/test/skydns/region2/east", _v(host="10.0.3.1")),
    # wildcard targets
    ("/skydns/test/skydns/wild/a", _v(host="10.0.4.1")),
    ("/skydns/test/skydns/wild/b", _v(host="10.0.4.2")),
    ("/skydns/test/skydns/svc1/prod", _v(host="10.0.5.1")),
    ("/skydns/test/skydns/svc2/prod", _v(host="10.0.5.2")),
    ("/skydns/test/skydns/svc2/dev", _v(host="10.0.5.3")),
    # group (group-01 .. 03) and a disagreement at the shallowest depth
    ("/skydns/test/skydns/dom/a", _v(host="127.0.0.1", group="g1")),
    ("/skydns/test/skydns/dom/sub/b", _v(host="127.0.0.2", group="g1")),
    ("/skydns/test/skydns/dom2/a", _v(host="127.0.0.1", group="g1")),
    ("/skydns/test/skydns/dom2/sub/b", _v(host="127.0.0.2")),
    ("/skydns/test/skydns/dom1/a", _v(host="127.0.0.1", group="g1")),
    ("/skydns/test/skydns/dom1/sub/b", _v(host="127.0.0.2", group="g2")),
    ("/skydns/test/skydns/dom3/a", _v(host="127.0.0.1", group="g1")),
    ("/skydns/test/skydns/dom3/b", _v(host="127.0.0.2", group="g2")),
    # TXT
    ("/skydns/test/skydns/txt/x1", _v(text="hello world")),
    ("/skydns/test/skydns/txtname", _v(host="a.skydns.test", text="owned by me")),
    ("/skydns/test/skydns/iptxt", _v(host="10.0.6.1", text="never served")),
    ("/skydns/test/skydns/long", _v(text=LONG_TEXT)),
    ("/skydns/test/skydns/txtalias", _v(host="txt.skydns.test")),
    # CNAMEs: a chain, a loop, a dangling target, an out-of-zone target, a target in another served zone
    ("/skydns/test/skydns/c1", _v(host="c2.skydns.test")),
    ("/skydns/test/skydns/c2", _v(host="a.skydns.test")),
    ("/skydns/test/skydns/loop1", _v(host="loop2.skydns.test")),
    ("/skydns/test/skydns/loop2", _v(host="loop1.skydns.test")),
    ("/skydns/test/skydns/dangling", _v(host="missing.skydns.test")),
    ("/skydns/test/skydns/external", _v(host="www.example.org")),
    ("/skydns/test/skydns/cross", _v(host="www.other.test")),
    ("/skydns/test/skydns/alias/6a7b8c9d", _v(host="a.skydns.test", targetstrip=1)),
    ("/skydns/test/other/www", _v(host="10.1.0.1")),
    # SRV: IP hosts, targetstrip, name hosts (in-zone glue A+AAAA), weights, dedupe by (target, port)
    ("/skydns/test/skydns/srvip/x1", _v(host="10.0.7.1", port=8080)),
    ("/skydns/test/skydns/srvip/x2", _v(host="10.0.7.2", port=8080)),
    ("/skydns/test/skydns/srvstrip/1a2b3c4d", _v(host="10.0.8.1", port=53, targetstrip=1)),
    ("/skydns/test/skydns/srvname/h1", _v(host="a.skydns.test", port=80)),
    ("/skydns/test/skydns/srvname/h2", _v(host="www.example.org", port=80, priority=20)),
    ("/skydns/test/skydns/srvname/h3", _v(host="dual.skydns.test", port=443)),
    ("/skydns/test/skydns/w3/a", _v(host="10.0.9.1", port=80)),
    ("/skydns/test/skydns/w3/b", _v(host="10.0.9.2", port=80)),
    ("/skydns/test/skydns/w3/c", _v(host="10.0.9.3", port=80)),
    ("/skydns/test/skydns/wmix/a", _v(host="10.0.9.11", port=80, weight=120)),
    ("/skydns/test/skydns/wmix/b", _v(host="10.0.9.12", port=80, weight=100)),
    ("/skydns/test/skydns/wmix/c", _v(host="10.0.9.13", port=80, weight=130)),
    ("/skydns/test/skydns/dedup/x1", _v(host="10.0.10.1", port=80, targetstrip=1)),
    ("/skydns/test/skydns/dedup/x2", _v(host="10.0.10.2", port=80, targetstrip=1)),
    ("/skydns/test/skydns/dedup/x3", _v(host="10.0.10.3", port=81, targetstrip=1)),
    ("/skydns/test/skydns/dedup/x4", _v(host="10.0.10.4", port=81, targetstrip=1)),
    # MX
    ("/skydns/test/skydns/mail/m1", _v(host="mx1.skydns.test", mail=True, priority=10)),
    ("/skydns/test/skydns/mail/m2", _v(host="10.0.11.2", mail=True, priority=20)),
    ("/skydns/test/skydns/mail/m3", _v(host="10.0.11.4", mail=True)),
    ("/skydns/test/skydns/mail/web", _v(host="10.0.11.3")),
    ("/skydns/test/skydns/mx1", _v(host="10.0.11.1")),
    # PTR
    ("/skydns/arpa/in-addr/10/0/0/1", _v(host="a.skydns.test")),
    # NS and apex
    ("/skydns/test/skydns/dns/ns/ns1", _v(host="10.0.12.1")),
    ("/skydns/test/skydns/dns/ns/ns2", _v(host="10.0.12.2")),
    ("/skydns/test/skydns/dns/apex/x1", _v(host="10.0.13.1")),
    # bad values next to good ones
    ("/skydns/test/skydns/mixed/good", _v(host="10.0.14.1")),
    ("/skydns/test/skydns/mixed/bad", '{"host":"10.0.14.2","ttl":"60"}'),
    ("/skydns/test/skydns/onlybad", "not json at all"),
    # ExternalDNS-written data: setIdentifier/owner fields, registry TXT, old-registry text inside a CNAME value
    ("/skydns/test/skydns/extdns/7f3a9b2c",
     '{"host":"10.0.15.1","ttl":120,"targetstrip":1,"setIdentifier":"eu","owner":"default"}'),
    ("/skydns/test/skydns/a-extdns/9d8e7f6a", _v(text=EXTDNS_OWNER_TEXT, targetstrip=1)),
    ("/skydns/test/skydns/extcname/1b2c3d4e", _v(host="a.skydns.test", text=EXTDNS_OWNER_TEXT, targetstrip=1)),
    ("/skydns/test/skydns/Upper", _v(host="10.0.16.1")),  # keys with upper case are never found (extdns-19)
    # CoreDNS other_test / cname_test shapes: an MX whose in-zone target is a CNAME, one host at two
    # preferences, one IP under two keys, an SRV whose target is a CNAME chain, a TXT over 512 bytes
    ("/skydns/test/skydns/mail2/a", _v(host="mxc.skydns.test", priority=50, mail=True)),
    ("/skydns/test/skydns/mail2/b", _v(host="mx.example.org", priority=50, mail=True)),
    ("/skydns/test/skydns/mxc", _v(host="a.skydns.test")),
    ("/skydns/test/skydns/mx3/a", _v(host="a.skydns.test", priority=20, mail=True)),
    ("/skydns/test/skydns/mx3/b", _v(host="a.skydns.test", priority=30, mail=True)),
    ("/skydns/test/skydns/multiport/http", _v(host="10.0.18.1", port=80)),
    ("/skydns/test/skydns/multiport/https", _v(host="10.0.18.1", port=443)),
    ("/skydns/test/skydns/srvchain/x", _v(host="c1.skydns.test", port=0)),
    ("/skydns/test/skydns/large600", _v(text="0" * 600)),
    # a big answer: over 512 bytes
    *((f"/skydns/test/skydns/big/h{i:02d}", _v(host=f"10.0.17.{i}")) for i in range(1, 41)),
]

SOA_SKYDNS = "skydns.test. 30 IN SOA ns.dns.skydns.test. hostmaster.skydns.test. 0 7200 1800 86400 30"
SOA_OTHER = "other.test. 30 IN SOA ns.dns.other.test. hostmaster.other.test. 0 7200 1800 86400 30"
SOA_REVERSE = ("0.10.in-addr.arpa. 30 IN SOA ns.dns.0.10.in-addr.arpa. hostmaster.0.10.in-addr.arpa. 0 7200 1800 "
               "86400 30")


@dataclass(frozen=True)
class Case:
    qname: str
    qtype: str
    rcode: str = "NOERROR"
    answer: list[str] = field(default_factory=list)
    ns: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    tcp_only: bool = False  # the answer is over 512 bytes: check it over TCP (or with EDNS)

    @property
    def id(self) -> str:
        return f"{self.qname}/{self.qtype}"


def _nodata(qname: str, qtype: str, soa: str = SOA_SKYDNS) -> Case:
    return Case(qname, qtype, ns=[soa])


def _nx(qname: str, qtype: str, soa: str = SOA_SKYDNS) -> Case:
    return Case(qname, qtype, "NXDOMAIN", ns=[soa])


CASES: list[Case] = [
    # A / AAAA
    Case("a.skydns.test.", "A", answer=["a.skydns.test. 300 IN A 10.0.0.1"]),
    _nodata("a.skydns.test.", "AAAA"),
    Case("dual.skydns.test.", "A", answer=["dual.skydns.test. 60 IN A 10.0.0.2"]),
    Case("dual.skydns.test.", "AAAA", answer=["dual.skydns.test. 60 IN AAAA 2001:db8::2"]),
    _nodata("v6only.skydns.test.", "A"),  # lookup-d01
    Case("v6only.skydns.test.", "AAAA", answer=["v6only.skydns.test. 300 IN AAAA 2001:db8::6"]),
    # subtree reads
    Case("web.skydns.test.", "A", answer=["web.skydns.test. 300 IN A 10.0.1.1", "web.skydns.test. 300 IN A 10.0.1.2"]),
    Case("deep.skydns.test.", "A", answer=["deep.skydns.test. 300 IN A 10.0.2.1"]),  # lookup-07
    Case("x.deep.skydns.test.", "A", answer=["x.deep.skydns.test. 300 IN A 10.0.2.1"]),
    Case("z.y.x.deep.skydns.test.", "A", answer=["z.y.x.deep.skydns.test. 300 IN A 10.0.2.1"]),
    Case("region2.skydns.test.", "A", answer=["region2.skydns.test. 300 IN A 10.0.3.1"]),  # cname-d02
    _nx("nothing.deep.skydns.test.", "A"),
    # wildcards in the query
    Case("*.wild.skydns.test.", "A",
         answer=["*.wild.skydns.test. 300 IN A 10.0.4.1", "*.wild.skydns.test. 300 IN A 10.0.4.2"]),
    Case("any.wild.skydns.test.", "A",
         answer=["any.wild.skydns.test. 300 IN A 10.0.4.1", "any.wild.skydns.test. 300 IN A 10.0.4.2"]),
    Case("prod.*.skydns.test.", "A",  # lookup-13: a wildcard mid-name
         answer=["prod.*.skydns.test. 300 IN A 10.0.5.1", "prod.*.skydns.test. 300 IN A 10.0.5.2"]),
    Case("prod.any.skydns.test.", "A",
         answer=["prod.any.skydns.test. 300 IN A 10.0.5.1", "prod.any.skydns.test. 300 IN A 10.0.5.2"]),
    _nodata("nope.*.skydns.test.", "A"),  # wild-05: keys under the cut, none match
    _nx("*.nothing.skydns.test.", "A"),
    # group
    Case("dom.skydns.test.", "A",
         answer=["dom.skydns.test. 300 IN A 127.0.0.1", "dom.skydns.test. 300 IN A 127.0.0.2"]),  # group-01
    Case("dom2.skydns.test.", "A",
         answer=["dom2.skydns.test. 300 IN A 127.0.0.1", "dom2.skydns.test. 300 IN A 127.0.0.2"]),  # group-02
    Case("dom1.skydns.test.", "A", answer=["dom1.skydns.test. 300 IN A 127.0.0.1"]),  # group-03
    Case("dom3.skydns.test.", "A",
         answer=["dom3.skydns.test. 300 IN A 127.0.0.1", "dom3.skydns.test. 300 IN A 127.0.0.2"]),
    # TXT
    Case("txt.skydns.test.", "TXT", answer=['txt.skydns.test. 300 IN TXT "hello world"']),
    _nodata("txt.skydns.test.", "A"),  # group-d02: text only answers A with NODATA
    Case("txtname.skydns.test.", "TXT", answer=['txtname.skydns.test. 300 IN TXT "owned by me"']),
    _nodata("txtname.skydns.test.", "A"),  # extdns-07: a name host with text gives no CNAME
    Case("iptxt.skydns.test.", "A", answer=["iptxt.skydns.test. 300 IN A 10.0.6.1"]),
    _nodata("iptxt.skydns.test.", "TXT"),  # extdns-02: text next to an IP is never served
    Case("long.skydns.test.", "TXT", answer=[f'long.skydns.test. 300 IN TXT "{"x" * 255}" "{"y" * 45}"']),
    Case("txtalias.skydns.test.", "TXT",
         answer=["txtalias.skydns.test. 300 IN CNAME txt.skydns.test.", 'txt.skydns.test. 300 IN TXT "hello world"']),
    # CNAME chasing
    Case("c1.skydns.test.", "A", answer=["c1.skydns.test. 300 IN CNAME c2.skydns.test.",
                                         "c2.skydns.test. 300 IN CNAME a.skydns.test.",
                                         "a.skydns.test. 300 IN A 10.0.0.1"]),
    _nodata("c1.skydns.test.", "AAAA"),  # the chain leads to no AAAA: CNAMEs dropped (lookup-11)
    _nodata("loop1.skydns.test.", "A"),  # lookup-16: loops are cut
    _nodata("dangling.skydns.test.", "A"),  # cname-d03
    Case("external.skydns.test.", "A", answer=["external.skydns.test. 300 IN CNAME www.example.org."]),
    Case("cross.skydns.test.", "A", answer=["cross.skydns.test. 300 IN CNAME www.other.test.",
                                            "www.other.test. 300 IN A 10.1.0.1"]),
    Case("alias.skydns.test.", "A", answer=["alias.skydns.test. 300 IN CNAME a.skydns.test.",
                                            "a.skydns.test. 300 IN A 10.0.0.1"]),
    # CNAME queries read the exact key only
    Case("c1.skydns.test.", "CNAME", answer=["c1.skydns.test. 300 IN CNAME c2.skydns.test."]),
    _nodata("a.skydns.test.", "CNAME"),  # cname-d07: an IP host
    _nx("web.skydns.test.", "CNAME"),  # lookup-d07: a directory of subkeys
    _nx("alias.skydns.test.", "CNAME"),  # extdns-03
    # SRV
    Case("srvip.skydns.test.", "SRV",
         answer=["srvip.skydns.test. 300 IN SRV 10 50 8080 x1.srvip.skydns.test.",
                 "srvip.skydns.test. 300 IN SRV 10 50 8080 x2.srvip.skydns.test."],
         extra=["x1.srvip.skydns.test. 300 IN A 10.0.7.1", "x2.srvip.skydns.test. 300 IN A 10.0.7.2"]),
    Case("srvstrip.skydns.test.", "SRV",
         answer=["srvstrip.skydns.test. 300 IN SRV 10 100 53 srvstrip.skydns.test."],
         extra=["srvstrip.skydns.test. 300 IN A 10.0.8.1"]),
    Case("srvname.skydns.test.", "SRV",
         answer=["srvname.skydns.test. 300 IN SRV 10 50 80 a.skydns.test.",
                 "srvname.skydns.test. 300 IN SRV 20 100 80 www.example.org.",
                 "srvname.skydns.test. 300 IN SRV 10 50 443 dual.skydns.test."],
         extra=["a.skydns.test. 300 IN A 10.0.0.1", "dual.skydns.test. 60 IN A 10.0.0.2",
                "dual.skydns.test. 60 IN AAAA 2001:db8::2"]),
    Case("w3.skydns.test.", "SRV",
         answer=["w3.skydns.test. 300 IN SRV 10 33 80 a.w3.skydns.test.",
                 "w3.skydns.test. 300 IN SRV 10 33 80 b.w3.skydns.test.",
                 "w3.skydns.test. 300 IN SRV 10 33 80 c.w3.skydns.test."],
         extra=["a.w3.skydns.test. 300 IN A 10.0.9.1", "b.w3.skydns.test. 300 IN A 10.0.9.2",
                "c.w3.skydns.test. 300 IN A 10.0.9.3"]),
    Case("wmix.skydns.test.", "SRV",
         answer=["wmix.skydns.test. 300 IN SRV 10 34 80 a.wmix.skydns.test.",
                 "wmix.skydns.test. 300 IN SRV 10 28 80 b.wmix.skydns.test.",
                 "wmix.skydns.test. 300 IN SRV 10 37 80 c.wmix.skydns.test."],
         extra=["a.wmix.skydns.test. 300 IN A 10.0.9.11", "b.wmix.skydns.test. 300 IN A 10.0.9.12",
                "c.wmix.skydns.test. 300 IN A 10.0.9.13"]),
    Case("dedup.skydns.test.", "SRV",  # lookup-d21: weights counted before the dedupe
         answer=["dedup.skydns.test. 300 IN SRV 10 25 80 dedup.skydns.test.",
                 "dedup.skydns.test. 300 IN SRV 10 25 81 dedup.skydns.test."],
         extra=[f"dedup.skydns.test. 300 IN A 10.0.10.{i}" for i in range(1, 5)]),
    _nodata("txt.skydns.test.", "SRV"),
    _nx("nosuch.skydns.test.", "SRV"),
    # MX
    Case("mail.skydns.test.", "MX",
         answer=["mail.skydns.test. 300 IN MX 10 mx1.skydns.test.",
                 "mail.skydns.test. 300 IN MX 20 m2.mail.skydns.test.",
                 "mail.skydns.test. 300 IN MX 10 m3.mail.skydns.test."],
         extra=["mx1.skydns.test. 300 IN A 10.0.11.1", "m2.mail.skydns.test. 300 IN A 10.0.11.2",
                "m3.mail.skydns.test. 300 IN A 10.0.11.4"]),
    _nodata("a.skydns.test.", "MX"),
    # PTR
    Case("1.0.0.10.in-addr.arpa.", "PTR", answer=["1.0.0.10.in-addr.arpa. 300 IN PTR a.skydns.test."]),
    _nx("0.0.10.in-addr.arpa.", "PTR", SOA_REVERSE),  # lookup-d17: exact read
    _nx("2.0.0.10.in-addr.arpa.", "PTR", SOA_REVERSE),
    # NS, apex, SOA
    Case("skydns.test.", "NS",
         answer=["skydns.test. 300 IN NS ns1.ns.dns.skydns.test.", "skydns.test. 300 IN NS ns2.ns.dns.skydns.test."],
         extra=["ns1.ns.dns.skydns.test. 300 IN A 10.0.12.1", "ns2.ns.dns.skydns.test. 300 IN A 10.0.12.2"]),
    _nodata("a.skydns.test.", "NS"),  # NS below the apex: like an unknown type
    _nodata("other.test.", "NS", SOA_OTHER),  # no dns/ns data: NODATA (CoreDNS: NXDOMAIN at the apex)
    Case("skydns.test.", "A", answer=["skydns.test. 300 IN A 10.0.13.1"]),  # dns/apex
    _nodata("skydns.test.", "AAAA"),  # lookup-d11: dns/apex exists, no fallback
    Case("other.test.", "A", answer=["other.test. 300 IN A 10.1.0.1"]),  # lookup-25: the whole-zone fallback
    Case("skydns.test.", "SOA", answer=[SOA_SKYDNS]),
    Case("a.skydns.test.", "SOA", answer=[SOA_SKYDNS]),  # lookup-d08: any name, owner = the zone
    Case("nosuch.skydns.test.", "SOA", answer=[SOA_SKYDNS]),
    Case("www.other.test.", "SOA", answer=[SOA_OTHER]),
    # NXDOMAIN vs NODATA, other types
    _nx("nosuch.skydns.test.", "A"),
    _nx("nosuch.skydns.test.", "TXT"),
    _nx("nosuch.other.test.", "A", SOA_OTHER),
    _nodata("a.skydns.test.", "CAA"),  # lookup-18
    _nx("nosuch.skydns.test.", "CAA"),  # lookup-19
    _nodata("a.skydns.test.", "ANY"),
    _nodata("deep.skydns.test.", "HINFO"),
    # case: matched case-insensitively (the exact owner case is checked in test_answers)
    Case("A.SkyDNS.Test.", "A", answer=["a.skydns.test. 300 IN A 10.0.0.1"]),
    # out of every zone
    Case("www.example.org.", "A", "REFUSED"),
    Case("test.", "SOA", "REFUSED"),
    # bad values are skipped, the good ones answered (CoreDNS: SERVFAIL)
    Case("mixed.skydns.test.", "A", answer=["mixed.skydns.test. 300 IN A 10.0.14.1"]),
    _nodata("onlybad.skydns.test.", "A"),
    # ExternalDNS-written data
    Case("extdns.skydns.test.", "A", answer=["extdns.skydns.test. 120 IN A 10.0.15.1"]),
    _nodata("extdns.skydns.test.", "TXT"),
    Case("a-extdns.skydns.test.", "TXT", answer=[f"a-extdns.skydns.test. 300 IN TXT '{EXTDNS_OWNER_TEXT}'"]),
    _nodata("extcname.skydns.test.", "A"),  # extdns-07
    Case("extcname.skydns.test.", "TXT", answer=[f"extcname.skydns.test. 300 IN TXT '{EXTDNS_OWNER_TEXT}'"]),
    _nx("upper.skydns.test.", "A"),  # extdns-19
    # CoreDNS other_test / cname_test shapes
    Case("mail2.skydns.test.", "MX",  # other-02: the target's CNAME chain goes to additional
         answer=["mail2.skydns.test. 300 IN MX 50 mxc.skydns.test.", "mail2.skydns.test. 300 IN MX 50 mx.example.org."],
         extra=["mxc.skydns.test. 300 IN CNAME a.skydns.test.", "a.skydns.test. 300 IN A 10.0.0.1"]),
    Case("mx3.skydns.test.", "MX",
         answer=["mx3.skydns.test. 300 IN MX 20 a.skydns.test.", "mx3.skydns.test. 300 IN MX 30 a.skydns.test."],
         extra=["a.skydns.test. 300 IN A 10.0.0.1"]),
    Case("multiport.skydns.test.", "A", answer=["multiport.skydns.test. 300 IN A 10.0.18.1"]),
    Case("multiport.skydns.test.", "SRV",
         answer=["multiport.skydns.test. 300 IN SRV 10 50 80 http.multiport.skydns.test.",
                 "multiport.skydns.test. 300 IN SRV 10 50 443 https.multiport.skydns.test."],
         extra=["http.multiport.skydns.test. 300 IN A 10.0.18.1", "https.multiport.skydns.test. 300 IN A 10.0.18.1"]),
    Case("srvchain.skydns.test.", "SRV",
         answer=["srvchain.skydns.test. 300 IN SRV 10 100 0 c1.skydns.test."],
         extra=["c1.skydns.test. 300 IN CNAME c2.skydns.test.", "c2.skydns.test. 300 IN CNAME a.skydns.test.",
                "a.skydns.test. 300 IN A 10.0.0.1"]),
    Case("large600.skydns.test.", "TXT",
         answer=[f'large600.skydns.test. 300 IN TXT "{"0" * 255}" "{"0" * 255}" "{"0" * 90}"'], tcp_only=True),
    # over 512 bytes
    Case("big.skydns.test.", "A", answer=[f"big.skydns.test. 300 IN A 10.0.17.{i}" for i in range(1, 41)],
         tcp_only=True),
]


# -- comparing a response with a case ---------------------------------------------------------------------

Section = dict[tuple[str, int], tuple[int, frozenset[dns.rdata.Rdata]]]


def _zero_serial(rdata: dns.rdata.Rdata, serial: int | None) -> dns.rdata.Rdata:
    if rdata.rdtype == dns.rdatatype.SOA:
        return rdata.replace(serial=0 if serial is None else serial)
    return rdata


def _parse_lines(lines: list[str], serial: int | None) -> Section:
    groups: dict[tuple[str, int], tuple[int, set[dns.rdata.Rdata]]] = {}
    for line in lines:
        name, ttl, rdclass, rdtype, rdata_text = line.split(None, 4)
        rtype = dns.rdatatype.from_text(rdtype)
        rdata = dns.rdata.from_text(dns.rdataclass.from_text(rdclass), rtype, _quote(rdata_text),
                                    origin=dns.name.root, relativize=False)
        key = (dns.name.from_text(name).to_text().lower(), rtype)
        old_ttl, rdatas = groups.get(key, (int(ttl), set()))
        rdatas.add(_zero_serial(rdata, serial))
        groups[key] = (min(old_ttl, int(ttl)), rdatas)
    return {k: (ttl, frozenset(v)) for k, (ttl, v) in groups.items()}


def _quote(rdata_text: str) -> str:
    # 'single-quoted' TXT data holds literal double quotes: turn it into a quoted, escaped string.
    if rdata_text.startswith("'") and rdata_text.endswith("'"):
        inner = rdata_text[1:-1].replace("\\", "\\\\").replace('"', '\\"')
        return f'"{inner}"'
    return rdata_text


def _section(rrsets: list, serial: int | None, *, use_serial: bool) -> Section:
    out: dict[tuple[str, int], tuple[int, set[dns.rdata.Rdata]]] = {}
    for rrset in rrsets:
        key = (rrset.name.to_text().lower(), rrset.rdtype)
        old_ttl, rdatas = out.get(key, (rrset.ttl, set()))
        for rdata in rrset:
            rdatas.add(_zero_serial(rdata, serial) if not use_serial else rdata)
        out[key] = (min(old_ttl, rrset.ttl), rdatas)
    return {k: (ttl, frozenset(v)) for k, (ttl, v) in out.items()}


def check(case: Case, response: dns.message.Message, *, serial: int | None = None) -> None:
    """Assert that ``response`` answers ``case``. ``serial``: the SOA serial expected (None: not compared)."""
    got_rcode = dns.rcode.to_text(response.rcode())
    assert got_rcode == case.rcode, f"{case.id}: rcode {got_rcode}, expected {case.rcode}\n{response}"
    if case.rcode in ("NOERROR", "NXDOMAIN"):
        assert response.flags & dns.flags.AA, f"{case.id}: AA not set"
    assert not response.flags & dns.flags.RA, f"{case.id}: RA set"
    assert not response.flags & dns.flags.TC, f"{case.id}: TC set"
    for title, expected, got in (("answer", case.answer, response.answer),
                                 ("authority", case.ns, response.authority),
                                 ("additional", case.extra, response.additional)):
        want = _parse_lines(expected, serial)
        have = _section(got, serial, use_serial=serial is not None)
        assert have == want, (f"{case.id}: {title} section differs\n  expected: {sorted(map(str, want.items()))}"
                              f"\n  got:      {sorted(map(str, have.items()))}\n{response}")
