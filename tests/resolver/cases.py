"""The resolver's query table, in the style of CoreDNS's etcd plugin tests.

``FIXTURE`` is (etcd key, JSON value) pairs under ``/skydns``; ``ZONES`` the zones to serve; ``CASES`` the
questions and the expected rcode and sections, with RRs as zone-file lines, each for one answer mode
(``Case.mode``: the default, ``own`` for ``--own-records-only``, ``subtree`` for ``--subtree-answers``).
:func:`check` compares a parsed ``dns.message.Message`` with a case, order-insensitively (RRsets sorted, names
compared case-insensitively, the SOA serial ignored unless a value is given). Nothing here depends on how the
answer was produced, so the same table runs against the in-memory answerer and against the real server over
UDP/TCP.

Comments name the CoreDNS fixture case a row mirrors (``plugin/etcd/*_test.go``) where there is one, and say
where and why we answer differently (CoreDNS's answer would not be valid DNS). The zone ``example.`` holds the
RFC 4592 §2.2.1 example zone, its delegation ``subdel`` included. The zone ``deleg.test.`` holds zone cuts
(RFC 1034 §4.3.2, RFC 9471): ``Case.aa`` False marks a referral (AA clear).
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

ZONES = ["skydns.test.", "other.test.", "0.10.in-addr.arpa.", "example.", "deleg.test."]
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
    # The apex written the documented way (dns/apex above, and an SPF TXT as a per-target leaf key of the zone
    # key), beside an ExternalName-style CNAME elsewhere in the zone (dnssync's docs.example.org)
    ("/skydns/test/skydns/dns/apex/mx", _v(host="mx1.skydns.test", mail=True, priority=10)),
    ("/skydns/test/skydns/5f1e2d3c", _v(text="v=spf1 -all", targetstrip=1)),
    ("/skydns/test/skydns/docs/c3a31977", _v(host="docs.example.net", targetstrip=1)),
    # a hand-written SkyDNS SRV set: instance keys below _sip._tcp
    ("/skydns/test/skydns/_tcp/_sip/pbx", _v(host="10.0.21.1", port=5060, priority=10, weight=60)),
    ("/skydns/test/skydns/_tcp/_sip/backup", _v(host="sip.example.org", port=5061, priority=20, weight=40)),
    # what dnssync writes for a NodePort Service: the name's A leaves, and its SRV one name below
    ("/skydns/test/skydns/game/4478845d", _v(host="10.0.22.1", targetstrip=1)),
    ("/skydns/test/skydns/game/_tcp/_game/81a5d60e", _v(host="_.game.skydns.test", port=30777, weight=50,
                                                        targetstrip=1)),
    # two names dnssync wrote, one below the other: neither answers the other's records
    ("/skydns/test/skydns/www2/aaaa0001", _v(host="10.0.23.1", targetstrip=1)),
    ("/skydns/test/skydns/www2/api/aaaa0002", _v(host="10.0.23.2", targetstrip=1)),
    # own records mixing a CNAME with an address, and two CNAMEs: one CNAME, alone
    ("/skydns/test/skydns/mixcname/11111111", _v(host="a.skydns.test", targetstrip=1)),
    ("/skydns/test/skydns/mixcname/22222222", _v(host="10.0.24.1", targetstrip=1)),
    ("/skydns/test/skydns/twocname/11111111", _v(host="a.skydns.test", targetstrip=1)),
    ("/skydns/test/skydns/twocname/22222222", _v(host="c2.skydns.test", targetstrip=1)),
    # wildcard records (RFC 4592): dnssync's key for *.apps.skydns.test, a name that exists under it, a CNAME
    ("/skydns/test/skydns/apps/*/0a1b2c3d", _v(host="10.0.20.1", targetstrip=1)),
    ("/skydns/test/skydns/apps/www/1a1a1a1a", _v(host="10.0.20.2", targetstrip=1)),
    ("/skydns/test/skydns/cdn/*", _v(host="edge.example.net")),
    ("/skydns/test/skydns/wcname/*", _v(host="a.skydns.test")),
    # RFC 4592 §2.2.1's zone (one SkyDNS key per record; *.example's MX is an instance key below it)
    ("/skydns/example/*", _v(text="this is a wildcard")),
    ("/skydns/example/*/mx", _v(host="host1.example", mail=True, priority=10)),
    ("/skydns/example/*/sub/1a2b3c4d", _v(text="this is not a wildcard", targetstrip=1)),
    ("/skydns/example/host1/5e6f7a8b", _v(host="192.0.2.1", targetstrip=1)),
    ("/skydns/example/host1/_tcp/_ssh/x", _v(host="host1.example", port=22)),
    ("/skydns/example/host2/_tcp/_ssh/x", _v(host="host2.example", port=22)),
    ("/skydns/example/subdel/dns/ns/1a2b3c4d", _v(host="ns.example.com")),
    ("/skydns/example/subdel/dns/ns/5e6f7a8b", _v(host="ns.example.net")),
    # deleg.test.: its own NS set and a wildcard at the apex, ...
    ("/skydns/test/deleg/dns/ns/ns1", _v(host="10.0.31.53")),
    ("/skydns/test/deleg/*", _v(host="10.0.31.99")),
    ("/skydns/test/deleg/a/0a0a0a0a", _v(host="10.0.31.1", targetstrip=1)),
    # ... lab.deleg.test. delegated as dnssync writes a DNSEndpoint NS record (syncer.keys): two servers inside
    # the child, ns1 with glue (A and AAAA), ns2 without, and one outside every zone of ours ...
    ("/skydns/test/deleg/lab/dns/ns/1a2b3c4d", _v(host="ns1.lab.deleg.test", ttl=3600, owner="default",
                                                   resource="crd/default/lab")),
    ("/skydns/test/deleg/lab/dns/ns/5e6f7a8b", _v(host="ns2.lab.deleg.test", ttl=3600)),
    ("/skydns/test/deleg/lab/dns/ns/9c0d1e2f", _v(host="ns.example.net", ttl=3600)),
    ("/skydns/test/deleg/lab/ns1/aaaa1111", _v(host="10.0.32.1", targetstrip=1)),
    ("/skydns/test/deleg/lab/ns1/aaaa2222", _v(host="2001:db8::32", targetstrip=1)),
    # ... and the parent's data at and below the cut, which is never answered: an A at the cut itself, a name
    # and a wildcard below it
    ("/skydns/test/deleg/lab/bbbb1111", _v(host="10.0.32.9", targetstrip=1)),
    ("/skydns/test/deleg/lab/www/cccc1111", _v(host="10.0.32.2", targetstrip=1)),
    ("/skydns/test/deleg/lab/*", _v(host="10.0.32.3")),
    # a cut whose servers are lab's ns1 (sibling glue) and an ordinary name of the zone
    ("/skydns/test/deleg/lab2/dns/ns/1a2b3c4d", _v(host="ns1.lab.deleg.test")),
    ("/skydns/test/deleg/lab2/dns/ns/5e6f7a8b", _v(host="a.deleg.test")),
    # a cut whose only server has no address anywhere, one whose server is an IP host (it names its key, with
    # glue), and dns/ns keys that do not decode (no cut)
    ("/skydns/test/deleg/noglue/dns/ns/1a2b3c4d", _v(host="ns.noglue.deleg.test")),
    ("/skydns/test/deleg/iplab/dns/ns/ns1", _v(host="10.0.33.1")),
    ("/skydns/test/deleg/badcut/dns/ns/x", "not json"),
    # names above the cut that point into it: a CNAME, an SRV target
    ("/skydns/test/deleg/labalias/dddd1111", _v(host="www.lab.deleg.test", targetstrip=1)),
    ("/skydns/test/deleg/_tcp/_x/a", _v(host="www.lab.deleg.test", port=80)),
]

SOA_SKYDNS = "skydns.test. 30 IN SOA ns.dns.skydns.test. hostmaster.skydns.test. 0 7200 1800 86400 30"
SOA_OTHER = "other.test. 30 IN SOA ns.dns.other.test. hostmaster.other.test. 0 7200 1800 86400 30"
SOA_REVERSE = ("0.10.in-addr.arpa. 30 IN SOA ns.dns.0.10.in-addr.arpa. hostmaster.0.10.in-addr.arpa. 0 7200 1800 "
               "86400 30")
SOA_EXAMPLE = "example. 30 IN SOA ns.dns.example. hostmaster.example. 0 7200 1800 86400 30"
SOA_DELEG = "deleg.test. 30 IN SOA ns.dns.deleg.test. hostmaster.deleg.test. 0 7200 1800 86400 30"
LAB_NS = ["lab.deleg.test. 3600 IN NS ns1.lab.deleg.test.", "lab.deleg.test. 3600 IN NS ns2.lab.deleg.test.",
          "lab.deleg.test. 3600 IN NS ns.example.net."]
LAB_GLUE = ["ns1.lab.deleg.test. 300 IN A 10.0.32.1", "ns1.lab.deleg.test. 300 IN AAAA 2001:db8::32"]
MODES = ("default", "own", "subtree")


@dataclass(frozen=True)
class Case:
    qname: str
    qtype: str
    rcode: str = "NOERROR"
    answer: list[str] = field(default_factory=list)
    ns: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    tcp_only: bool = False  # the answer is over 512 bytes: check it over TCP (or with EDNS)
    mode: str = "default"  # the answer mode the case is asked in (MODES)
    aa: bool = True  # AA set (NOERROR and NXDOMAIN); False: a referral

    @property
    def id(self) -> str:
        return f"{self.qname}/{self.qtype}" + ("" if self.mode == "default" else f"/{self.mode}")


def _nodata(qname: str, qtype: str, soa: str = SOA_SKYDNS, mode: str = "default") -> Case:
    return Case(qname, qtype, ns=[soa], mode=mode)


def _nx(qname: str, qtype: str, soa: str = SOA_SKYDNS, mode: str = "default") -> Case:
    return Case(qname, qtype, "NXDOMAIN", ns=[soa], mode=mode)


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
    # a key three levels down is z.y.x.deep's record; above it are empty non-terminals (CoreDNS, lookup-07,
    # answers it at every ancestor: subtree mode)
    Case("z.y.x.deep.skydns.test.", "A", answer=["z.y.x.deep.skydns.test. 300 IN A 10.0.2.1"]),
    Case("y.x.deep.skydns.test.", "A", answer=["y.x.deep.skydns.test. 300 IN A 10.0.2.1"]),  # z is y's instance
    _nodata("deep.skydns.test.", "A"),
    _nodata("x.deep.skydns.test.", "A"),
    Case("deep.skydns.test.", "A", answer=["deep.skydns.test. 300 IN A 10.0.2.1"], mode="subtree"),
    Case("x.deep.skydns.test.", "A", answer=["x.deep.skydns.test. 300 IN A 10.0.2.1"], mode="subtree"),
    # its own key and the instance below it (CoreDNS, cname-d02, ignores the key: subtree mode)
    Case("region2.skydns.test.", "A",
         answer=["region2.skydns.test. 300 IN A 10.0.3.9", "region2.skydns.test. 300 IN A 10.0.3.1"]),
    Case("region2.skydns.test.", "A", answer=["region2.skydns.test. 300 IN A 10.0.3.1"], mode="subtree"),
    Case("region2.skydns.test.", "A", answer=["region2.skydns.test. 300 IN A 10.0.3.9"], mode="own"),
    _nodata("deep.skydns.test.", "A", mode="own"),  # only instances below: an empty non-terminal
    _nx("nothing.deep.skydns.test.", "A"),
    # dnssync's names: a name's own records only, never a name's below it (CoreDNS #3803)
    Case("www2.skydns.test.", "A", answer=["www2.skydns.test. 300 IN A 10.0.23.1"]),
    Case("api.www2.skydns.test.", "A", answer=["api.www2.skydns.test. 300 IN A 10.0.23.2"]),
    Case("www2.skydns.test.", "A", answer=["www2.skydns.test. 300 IN A 10.0.23.1",
                                           "www2.skydns.test. 300 IN A 10.0.23.2"], mode="subtree"),
    # query labels * and any: ordinary labels (names that do not exist, no wildcard covers them) ...
    _nx("*.wild.skydns.test.", "A"),
    _nx("any.wild.skydns.test.", "A"),
    _nx("prod.*.skydns.test.", "A"),
    _nx("any.skydns.test.", "A"),
    # ... and CoreDNS's query wildcards under --subtree-answers
    Case("*.wild.skydns.test.", "A", mode="subtree",
         answer=["*.wild.skydns.test. 300 IN A 10.0.4.1", "*.wild.skydns.test. 300 IN A 10.0.4.2"]),
    Case("any.wild.skydns.test.", "A", mode="subtree",
         answer=["any.wild.skydns.test. 300 IN A 10.0.4.1", "any.wild.skydns.test. 300 IN A 10.0.4.2"]),
    Case("prod.*.skydns.test.", "A", mode="subtree",  # lookup-13: a wildcard mid-name
         answer=["prod.*.skydns.test. 300 IN A 10.0.5.1", "prod.*.skydns.test. 300 IN A 10.0.5.2"]),
    Case("prod.any.skydns.test.", "A", mode="subtree",
         answer=["prod.any.skydns.test. 300 IN A 10.0.5.1", "prod.any.skydns.test. 300 IN A 10.0.5.2"]),
    _nodata("nope.*.skydns.test.", "A", mode="subtree"),  # wild-05: keys under the cut, none match
    _nx("*.nothing.skydns.test.", "A", mode="subtree"),
    # wildcard records (RFC 4592): synthesis at names that do not exist, owner = QNAME
    Case("foo.apps.skydns.test.", "A", answer=["foo.apps.skydns.test. 300 IN A 10.0.20.1"]),
    Case("a.b.apps.skydns.test.", "A", answer=["a.b.apps.skydns.test. 300 IN A 10.0.20.1"]),
    _nodata("foo.apps.skydns.test.", "AAAA"),
    _nodata("apps.skydns.test.", "A"),  # the wildcard's parent: an empty non-terminal, nothing synthesised
    Case("*.apps.skydns.test.", "A", answer=["*.apps.skydns.test. 300 IN A 10.0.20.1"]),  # the wildcard itself
    Case("www.apps.skydns.test.", "A", answer=["www.apps.skydns.test. 300 IN A 10.0.20.2"]),  # exists: no synthesis
    _nodata("www.apps.skydns.test.", "AAAA"),
    _nx("x.www.apps.skydns.test.", "A"),  # closest encloser www.apps: no *.www.apps
    Case("foo.apps.skydns.test.", "A", answer=["foo.apps.skydns.test. 300 IN A 10.0.20.1"], mode="subtree"),
    Case("x.cdn.skydns.test.", "A", answer=["x.cdn.skydns.test. 300 IN CNAME edge.example.net."]),
    Case("x.cdn.skydns.test.", "CNAME", answer=["x.cdn.skydns.test. 300 IN CNAME edge.example.net."]),
    Case("x.wcname.skydns.test.", "A", answer=["x.wcname.skydns.test. 300 IN CNAME a.skydns.test.",
                                               "a.skydns.test. 300 IN A 10.0.0.1"]),
    Case("x.wcname.skydns.test.", "TXT", answer=["x.wcname.skydns.test. 300 IN CNAME a.skydns.test."],
         ns=[SOA_SKYDNS]),
    # group over CoreDNS's subtree reads
    Case("dom.skydns.test.", "A", mode="subtree",
         answer=["dom.skydns.test. 300 IN A 127.0.0.1", "dom.skydns.test. 300 IN A 127.0.0.2"]),  # group-01
    Case("dom2.skydns.test.", "A", mode="subtree",
         answer=["dom2.skydns.test. 300 IN A 127.0.0.1", "dom2.skydns.test. 300 IN A 127.0.0.2"]),  # group-02
    Case("dom1.skydns.test.", "A", answer=["dom1.skydns.test. 300 IN A 127.0.0.1"], mode="subtree"),  # group-03
    # ... and over a name's own records and instances (sub/b belongs to sub.dom)
    Case("dom.skydns.test.", "A", answer=["dom.skydns.test. 300 IN A 127.0.0.1"]),
    Case("dom1.skydns.test.", "A", answer=["dom1.skydns.test. 300 IN A 127.0.0.1"]),
    Case("dom3.skydns.test.", "A",  # a disagreement at the shallowest depth keeps both
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
    # the chain leads to no AAAA: the CNAMEs stay, NODATA for the last name (CoreDNS, lookup-11, drops them and
    # answers NODATA for a name that a CNAME query shows to be a CNAME)
    Case("c1.skydns.test.", "AAAA", answer=["c1.skydns.test. 300 IN CNAME c2.skydns.test.",
                                            "c2.skydns.test. 300 IN CNAME a.skydns.test."], ns=[SOA_SKYDNS]),
    Case("loop1.skydns.test.", "A", answer=["loop1.skydns.test. 300 IN CNAME loop2.skydns.test.",  # lookup-16
                                            "loop2.skydns.test. 300 IN CNAME loop1.skydns.test."]),
    Case("dangling.skydns.test.", "A", "NXDOMAIN",  # cname-d03; the rcode of the last name (RFC 6604)
         answer=["dangling.skydns.test. 300 IN CNAME missing.skydns.test."], ns=[SOA_SKYDNS]),
    Case("external.skydns.test.", "A", answer=["external.skydns.test. 300 IN CNAME www.example.org."]),
    Case("external.skydns.test.", "MX", answer=["external.skydns.test. 300 IN CNAME www.example.org."]),
    # an ExternalName Service as dnssync writes it: a CNAME for every type, a CNAME query included
    Case("docs.skydns.test.", "CNAME", answer=["docs.skydns.test. 300 IN CNAME docs.example.net."]),
    Case("docs.skydns.test.", "A", answer=["docs.skydns.test. 300 IN CNAME docs.example.net."]),
    Case("docs.skydns.test.", "TXT", answer=["docs.skydns.test. 300 IN CNAME docs.example.net."]),
    # own records with a CNAME and an address, and with two CNAMEs: the (first) CNAME alone
    Case("mixcname.skydns.test.", "A", answer=["mixcname.skydns.test. 300 IN CNAME a.skydns.test.",
                                               "a.skydns.test. 300 IN A 10.0.0.1"]),
    Case("twocname.skydns.test.", "A", answer=["twocname.skydns.test. 300 IN CNAME a.skydns.test.",
                                               "a.skydns.test. 300 IN A 10.0.0.1"]),
    Case("twocname.skydns.test.", "CNAME", answer=["twocname.skydns.test. 300 IN CNAME a.skydns.test."]),
    Case("cross.skydns.test.", "A", answer=["cross.skydns.test. 300 IN CNAME www.other.test.",
                                            "www.other.test. 300 IN A 10.1.0.1"]),
    Case("alias.skydns.test.", "A", answer=["alias.skydns.test. 300 IN CNAME a.skydns.test.",
                                            "a.skydns.test. 300 IN A 10.0.0.1"]),
    # CNAME queries: the CNAME alone; a name without one is NODATA (CoreDNS reads the bare key and answers
    # NXDOMAIN for every name with per-target leaf keys, lookup-d07, extdns-03: RFC 8020 resolvers then drop it)
    Case("c1.skydns.test.", "CNAME", answer=["c1.skydns.test. 300 IN CNAME c2.skydns.test."]),
    _nodata("a.skydns.test.", "CNAME"),  # cname-d07: an IP host
    _nodata("web.skydns.test.", "CNAME"),
    Case("alias.skydns.test.", "CNAME", answer=["alias.skydns.test. 300 IN CNAME a.skydns.test."]),
    _nx("nosuch.skydns.test.", "CNAME"),
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
    _nodata("srvname.skydns.test.", "A"),  # name hosts below are SRV targets, never CNAMEs (CoreDNS: 3 CNAMEs)
    # a hand-written SkyDNS SRV set, and the empty non-terminal a QNAME-minimising resolver asks first
    Case("_sip._tcp.skydns.test.", "SRV",
         answer=["_sip._tcp.skydns.test. 300 IN SRV 20 100 5061 sip.example.org.",
                 "_sip._tcp.skydns.test. 300 IN SRV 10 100 5060 pbx._sip._tcp.skydns.test."],
         extra=["pbx._sip._tcp.skydns.test. 300 IN A 10.0.21.1"]),
    _nodata("_tcp.skydns.test.", "A"),  # CoreDNS: a CNAME built from the SRV keys below (and a port-0 SRV)
    # CoreDNS's aggregation, without CNAMEs from below: the instances' addresses only
    Case("_tcp.skydns.test.", "A", answer=["_tcp.skydns.test. 300 IN A 10.0.21.1"], mode="subtree"),
    Case("mail.skydns.test.", "A", mode="subtree", answer=[
        "mail.skydns.test. 300 IN A 10.0.11.2", "mail.skydns.test. 300 IN A 10.0.11.4",
        "mail.skydns.test. 300 IN A 10.0.11.3"]),
    Case("alias.skydns.test.", "A", mode="subtree", answer=["alias.skydns.test. 300 IN CNAME a.skydns.test.",
                                                            "a.skydns.test. 300 IN A 10.0.0.1"]),
    _nodata("_tcp.skydns.test.", "CNAME"),
    _nodata("_tcp.skydns.test.", "SRV"),
    Case("pbx._sip._tcp.skydns.test.", "A", answer=["pbx._sip._tcp.skydns.test. 300 IN A 10.0.21.1"]),
    _nodata("backup._sip._tcp.skydns.test.", "A"),  # a name host with a port is SRV data, not a CNAME
    # dnssync's NodePort Service: the SRV one name below, the name's own A
    Case("_game._tcp.game.skydns.test.", "SRV",
         answer=["_game._tcp.game.skydns.test. 300 IN SRV 10 100 30777 game.skydns.test."],
         extra=["game.skydns.test. 300 IN A 10.0.22.1"]),
    _nodata("_tcp.game.skydns.test.", "A"),
    Case("game.skydns.test.", "A", answer=["game.skydns.test. 300 IN A 10.0.22.1"]),
    Case("game.skydns.test.", "SRV",  # its own A as SkyDNS's port-0 SRV; the _game SRV below is not game's
         answer=["game.skydns.test. 300 IN SRV 10 100 0 game.skydns.test."],
         extra=["game.skydns.test. 300 IN A 10.0.22.1"]),
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
    _nodata("1.0.0.10.in-addr.arpa.", "A", SOA_REVERSE),  # a reverse zone's name host: a PTR, never a CNAME
    _nodata("0.0.10.in-addr.arpa.", "PTR", SOA_REVERSE),  # an empty non-terminal (CoreDNS lookup-d17: NXDOMAIN)
    _nx("2.0.0.10.in-addr.arpa.", "PTR", SOA_REVERSE),
    # NS, apex, SOA
    Case("skydns.test.", "NS",
         answer=["skydns.test. 300 IN NS ns1.ns.dns.skydns.test.", "skydns.test. 300 IN NS ns2.ns.dns.skydns.test."],
         extra=["ns1.ns.dns.skydns.test. 300 IN A 10.0.12.1", "ns2.ns.dns.skydns.test. 300 IN A 10.0.12.2"]),
    _nodata("a.skydns.test.", "NS"),  # NS below the apex: like an unknown type
    _nodata("other.test.", "NS", SOA_OTHER),  # no dns/ns data: NODATA (CoreDNS: NXDOMAIN at the apex)
    # the apex: its own records only, never the zone's (no CNAME from docs/ or external, no MX from mail/)
    Case("skydns.test.", "A", answer=["skydns.test. 300 IN A 10.0.13.1"]),  # dns/apex
    _nodata("skydns.test.", "AAAA"),  # lookup-d11: dns/apex exists, no fallback
    Case("skydns.test.", "TXT", answer=['skydns.test. 300 IN TXT "v=spf1 -all"']),  # the zone key's leaf key
    Case("skydns.test.", "MX", answer=["skydns.test. 300 IN MX 10 mx1.skydns.test."],
         extra=["mx1.skydns.test. 300 IN A 10.0.11.1"]),
    _nodata("skydns.test.", "CNAME"),
    _nodata("other.test.", "A", SOA_OTHER),  # no whole-zone fallback (CoreDNS lookup-25: every A in the zone)
    Case("other.test.", "A", answer=["other.test. 300 IN A 10.1.0.1"], mode="subtree"),  # ... restored
    Case("skydns.test.", "SOA", answer=[SOA_SKYDNS]),
    # SOA at the apex only (CoreDNS lookup-d08 puts the apex SOA in the answer of any name in the zone)
    _nodata("a.skydns.test.", "SOA"),
    _nx("nosuch.skydns.test.", "SOA"),
    _nodata("www.other.test.", "SOA", SOA_OTHER),
    _nodata("foo.apps.skydns.test.", "SOA"),  # a name a wildcard covers has no SOA either
    Case("docs.skydns.test.", "SOA", answer=["docs.skydns.test. 300 IN CNAME docs.example.net."]),
    # NXDOMAIN vs NODATA, other types
    _nx("nosuch.skydns.test.", "A"),
    _nx("nosuch.skydns.test.", "TXT"),
    _nx("nosuch.other.test.", "A", SOA_OTHER),
    _nodata("a.skydns.test.", "CAA"),  # lookup-18
    _nx("nosuch.skydns.test.", "CAA"),  # lookup-19
    _nodata("deep.skydns.test.", "HINFO"),
    # ANY (RFC 8482): one RRset, or a synthesised HINFO
    Case("a.skydns.test.", "ANY", answer=["a.skydns.test. 300 IN A 10.0.0.1"]),
    Case("skydns.test.", "ANY", answer=["skydns.test. 300 IN A 10.0.13.1"]),
    Case("txt.skydns.test.", "ANY", answer=['txt.skydns.test. 300 IN TXT "hello world"']),
    Case("c1.skydns.test.", "ANY", answer=["c1.skydns.test. 300 IN CNAME c2.skydns.test."]),
    Case("other.test.", "ANY", answer=['other.test. 3789 IN HINFO "RFC8482" ""']),
    Case("onlybad.skydns.test.", "ANY", answer=['onlybad.skydns.test. 3789 IN HINFO "RFC8482" ""']),
    _nx("nosuch.skydns.test.", "ANY"),
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
    # RFC 4592 §2.2.1: answers synthesised from the wildcards ...
    Case("host3.example.", "MX", answer=["host3.example. 300 IN MX 10 host1.example."],
         extra=["host1.example. 300 IN A 192.0.2.1"]),
    _nodata("host3.example.", "A", SOA_EXAMPLE),  # no A at *.example: no error, no data
    Case("foo.bar.example.", "TXT", answer=['foo.bar.example. 300 IN TXT "this is a wildcard"']),
    # ... and answers that are not
    _nodata("host1.example.", "MX", SOA_EXAMPLE),  # host1.example exists
    _nodata("sub.*.example.", "MX", SOA_EXAMPLE),  # sub.*.example exists
    _nx("_telnet._tcp.host1.example.", "SRV", SOA_EXAMPLE),  # _tcp.host1.example exists (without data)
    _nx("ghost.*.example.", "MX", SOA_EXAMPLE),  # *.example exists: the source would be *.*.example
    # the same zone's names themselves
    Case("*.example.", "TXT", answer=['*.example. 300 IN TXT "this is a wildcard"']),
    Case("sub.*.example.", "TXT", answer=['sub.*.example. 300 IN TXT "this is not a wildcard"']),
    Case("host1.example.", "A", answer=["host1.example. 300 IN A 192.0.2.1"]),
    Case("_ssh._tcp.host2.example.", "SRV", answer=["_ssh._tcp.host2.example. 300 IN SRV 10 100 22 host2.example."]),
    _nodata("host2.example.", "A", SOA_EXAMPLE),  # an empty non-terminal
    # ... and §2.2.1's host.subdel.example: subdel exists and is a zone cut, so a referral, never the wildcard
    Case("host.subdel.example.", "A", aa=False,
         ns=["subdel.example. 300 IN NS ns.example.com.", "subdel.example. 300 IN NS ns.example.net."]),
    Case("subdel.example.", "TXT", aa=False,
         ns=["subdel.example. 300 IN NS ns.example.com.", "subdel.example. 300 IN NS ns.example.net."]),
    # zone cuts (RFC 1034 §4.3.2, RFC 9471): a referral for the cut and every name below it, of any type - AA
    # clear, no answer, the NS RRset in authority, glue for the servers inside the child (ns2 has none, the
    # server outside our zones gets none) ...
    Case("lab.deleg.test.", "NS", aa=False, ns=LAB_NS, extra=LAB_GLUE),
    Case("lab.deleg.test.", "A", aa=False, ns=LAB_NS, extra=LAB_GLUE),  # the parent's A at the cut: not served
    Case("lab.deleg.test.", "SOA", aa=False, ns=LAB_NS, extra=LAB_GLUE),
    Case("lab.deleg.test.", "ANY", aa=False, ns=LAB_NS, extra=LAB_GLUE),
    Case("www.lab.deleg.test.", "A", aa=False, ns=LAB_NS, extra=LAB_GLUE),
    Case("deep.x.lab.deleg.test.", "A", aa=False, ns=LAB_NS, extra=LAB_GLUE),  # not NXDOMAIN: the child's name
    Case("ns1.lab.deleg.test.", "A", aa=False, ns=LAB_NS, extra=LAB_GLUE),  # glue is not authoritative data
    Case("1a2b3c4d.ns.dns.lab.deleg.test.", "A", aa=False, ns=LAB_NS, extra=LAB_GLUE),  # nor are the NS keys
    Case("www.lab.deleg.test.", "A", aa=False, ns=LAB_NS, extra=LAB_GLUE, mode="own"),
    Case("www.lab.deleg.test.", "A", aa=False, ns=LAB_NS, extra=LAB_GLUE, mode="subtree"),
    # ... except DS at the cut, which is the parent's (we hold none: NODATA); DS below it is the child's
    _nodata("lab.deleg.test.", "DS", SOA_DELEG),
    Case("www.lab.deleg.test.", "DS", aa=False, ns=LAB_NS, extra=LAB_GLUE),
    # a wildcard above the cut synthesises names beside it, never the cut or a name below it; one below it is
    # the child's
    Case("nothere.deleg.test.", "A", answer=["nothere.deleg.test. 300 IN A 10.0.31.99"]),
    Case("nothere.lab.deleg.test.", "A", aa=False, ns=LAB_NS, extra=LAB_GLUE),
    # a CNAME into the cut: our CNAME (AA set), then the referral's authority and additional (RFC 1034 §4.3.2)
    Case("labalias.deleg.test.", "A", answer=["labalias.deleg.test. 300 IN CNAME www.lab.deleg.test."],
         ns=LAB_NS, extra=LAB_GLUE),
    # an SRV target below a cut: no address from the parent's data
    Case("_x._tcp.deleg.test.", "SRV", answer=["_x._tcp.deleg.test. 300 IN SRV 10 100 80 www.lab.deleg.test."]),
    # sibling glue (RFC 9471) and an in-zone server's own address; a server without any address; an IP host
    Case("lab2.deleg.test.", "NS", aa=False,
         ns=["lab2.deleg.test. 300 IN NS ns1.lab.deleg.test.", "lab2.deleg.test. 300 IN NS a.deleg.test."],
         extra=[*LAB_GLUE, "a.deleg.test. 300 IN A 10.0.31.1"]),
    Case("noglue.deleg.test.", "A", aa=False, ns=["noglue.deleg.test. 300 IN NS ns.noglue.deleg.test."]),
    Case("iplab.deleg.test.", "NS", aa=False, ns=["iplab.deleg.test. 300 IN NS ns1.ns.dns.iplab.deleg.test."],
         extra=["ns1.ns.dns.iplab.deleg.test. 300 IN A 10.0.33.1"]),
    _nodata("badcut.deleg.test.", "NS", SOA_DELEG),  # NS keys that do not decode cut nothing
    # the apex's NS set is an answer, as before
    Case("deleg.test.", "NS", answer=["deleg.test. 300 IN NS ns1.ns.dns.deleg.test."],
         extra=["ns1.ns.dns.deleg.test. 300 IN A 10.0.31.53"]),
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
        aa = bool(response.flags & dns.flags.AA)
        assert aa == case.aa, f"{case.id}: AA {'set' if aa else 'clear'}, expected {'set' if case.aa else 'clear'}"
    assert not response.flags & dns.flags.RA, f"{case.id}: RA set"
    assert not response.flags & dns.flags.TC, f"{case.id}: TC set"
    for title, expected, got in (("answer", case.answer, response.answer),
                                 ("authority", case.ns, response.authority),
                                 ("additional", case.extra, response.additional)):
        want = _parse_lines(expected, serial)
        have = _section(got, serial, use_serial=serial is not None)
        assert have == want, (f"{case.id}: {title} section differs\n  expected: {sorted(map(str, want.items()))}"
                              f"\n  got:      {sorted(map(str, have.items()))}\n{response}")
