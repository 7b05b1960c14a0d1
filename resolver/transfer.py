"""Zone transfer requests, decisions and messages: AXFR (RFC 5936), IXFR (RFC 1995), NOTIFY (RFC 1996), TSIG
(RFC 8945). Pure: bytes in, decisions and bytes out (the responder in :mod:`resolver.primary` does the rest).

**Who may transfer.** A client whose address is inside ``--allow-transfer`` (default: nobody) and, when a TSIG
key is configured (``--tsig-key NAME:ALGORITHM:BASE64``), whose request is signed with that key. Everyone else
gets REFUSED (outside the list, or an unsigned request where a key is required) or NOTAUTH (signed with an
unknown key, a bad MAC, or a time outside the fudge - RFC 8945's BADKEY/BADSIG/BADTIME, sent unsigned), and
never a record. Over UDP an AXFR is REFUSED (RFC 5936 §4.2: TCP only); an IXFR is answered as below.

**AXFR.** The zone's records (:mod:`resolver.zonecontent`) between two copies of the SOA, packed into messages of
at most :data:`MESSAGE_TARGET` bytes, made one at a time as the connection takes them (:func:`stream`): a zone of
100,000 records is many messages, never one. Every message has the query's ID, QR and AA; the question is in
the first only (RFC 5936 §2.2.1). With TSIG every message is signed, each MAC chaining the previous one (RFC
8945 §5.3.1).

**IXFR.** The client's serial (the SOA in the query's authority section) decides:

* equal to the zone's, or newer than it (RFC 1982): the current SOA alone (nothing to do);
* the journal holds the chain from it: the difference, as RFC 1995 writes it - the new SOA, then per delta the
  old SOA, the deleted records, the new SOA, the added records - and the new SOA again;
* otherwise (unknown, older than the journal, or a journal reset): the whole zone in AXFR form (RFC 1995 §4).

Over UDP the difference is sent when it fits the client's size (512 bytes, or its EDNS payload), else the
current SOA alone, which tells the client to retry over TCP (RFC 1995 §2).

**NOTIFY.** :func:`notify_message` is the NOTIFY we send (opcode 4, AA, the zone's SOA in the answer section,
signed with the TSIG key if any). An incoming NOTIFY for a zone we serve is acknowledged (an empty NOERROR
reply with the question: we are the primary, there is nothing to fetch); for any other zone REFUSED. A signed
query of any other kind (a secondary's SOA check) is checked, answered as the resolver answers it unsigned, and
the reply signed.
"""

from __future__ import annotations

import base64
import binascii
import enum
import ipaddress
import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig

from resolver.journal import serial_lt
from resolver.zonecontent import ZoneContent
from skydns.settings import Network, parse_networks

MESSAGE_TARGET = 16_000  # bytes of records per transfer message (TCP allows 65535; BIND uses about 16 KB)
TSIG_FUDGE = 300
UDP_DEFAULT = 512
T_SOA, T_IXFR, T_AXFR = 6, 251, 252
OP_QUERY, OP_NOTIFY = 0, 4
QR, AA = 0x8000, 0x0400
ALGORITHMS = {
    "hmac-sha256": dns.tsig.HMAC_SHA256, "hmac-sha384": dns.tsig.HMAC_SHA384, "hmac-sha512": dns.tsig.HMAC_SHA512,
    "hmac-sha224": dns.tsig.HMAC_SHA224, "hmac-sha1": dns.tsig.HMAC_SHA1,
}
_HEADER = struct.Struct("!HHHHHH")


# -- configuration ---------------------------------------------------------------------------------------------

def parse_acl(items: Sequence[str]) -> tuple[Network, ...]:
    """``--allow-transfer`` values (comma-separated CIDRs or addresses, repeatable). Raises ``ValueError``."""
    return parse_networks(items, "--allow-transfer")


def allowed(acl: Sequence[Network], client: object) -> bool:
    """The client address (a socket address tuple) is inside the list."""
    if not isinstance(client, tuple) or not client:
        return False
    try:
        ip = ipaddress.ip_address(str(client[0]).split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in acl)


def parse_tsig_key(text: str) -> dns.tsig.Key:
    """``--tsig-key NAME:ALGORITHM:BASE64`` (e.g. ``xfr:hmac-sha256:c2VjcmV0...``). Raises ``ValueError``."""
    parts = text.strip().split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise ValueError("--tsig-key must be NAME:ALGORITHM:BASE64")
    name, algorithm, secret = parts
    algorithm = algorithm.lower()
    if algorithm not in ALGORITHMS:
        raise ValueError(f"--tsig-key: algorithm {algorithm!r} is not one of {', '.join(sorted(ALGORITHMS))}")
    try:
        raw = base64.b64decode(secret, validate=True)
        key_name = dns.name.from_text(name)
    except (binascii.Error, ValueError, dns.exception.DNSException) as exc:
        raise ValueError(f"--tsig-key: {exc}") from None
    if not raw:
        raise ValueError("--tsig-key: the secret is empty")
    return dns.tsig.Key(key_name, raw, ALGORITHMS[algorithm])


# -- requests --------------------------------------------------------------------------------------------------

class Kind(enum.Enum):
    AXFR = "axfr"
    IXFR = "ixfr"
    NOTIFY = "notify"
    SIGNED = "signed"  # any other signed query: checked, answered as unsigned, the reply signed


def wants_primary(query: bytes) -> bool:
    """A cheap test on the raw query: it may be a transfer, a NOTIFY or a TSIG-signed message (then
    :func:`parse_request` looks closer); everything else goes to the ordinary answerer untouched."""
    if len(query) < 12 or query[2] & 0x80:
        return False
    opcode = (query[2] >> 3) & 0xF
    if opcode == OP_NOTIFY:
        return True
    if opcode != OP_QUERY:
        return False
    pos = 12
    n = len(query)
    while pos < n:
        length = query[pos]
        if length == 0:
            break
        if length > 63:
            return False
        pos += length + 1
    if pos + 3 > n:
        return False
    qtype = (query[pos + 1] << 8) | query[pos + 2]
    if qtype in (T_AXFR, T_IXFR):
        return True
    return query[10:12] != b"\0\0" and b"\x00\xfa\x00\xff" in query[pos:]  # a TSIG RR (type 250, class ANY)


@dataclass(frozen=True)
class Request:
    """A parsed request: its kind, the question, the TSIG state and (IXFR) the client's serial."""

    kind: Kind
    message: dns.message.Message
    zone: str  # the question's name, lower case, without the trailing dot
    signed: bool  # carried a TSIG that verified
    serial: int | None = None  # IXFR: the client's serial


@dataclass(frozen=True)
class Rejected:
    """A request answered with an error at once; ``reply`` None: nothing to send."""

    reply: bytes | None
    reason: str


def parse_request(query: bytes, key: dns.tsig.Key | None) -> Request | Rejected:
    """Parse (and, when signed, verify) a request :func:`wants_primary` picked."""
    keyring = {key.name: key} if key is not None else {}
    try:
        msg = dns.message.from_wire(query, keyring=keyring)
    except dns.message.UnknownTSIGKey:
        return Rejected(_bare(query, dns.rcode.NOTAUTH), "tsig_unknown_key")
    except (dns.tsig.BadSignature, dns.tsig.PeerBadSignature):
        return Rejected(_bare(query, dns.rcode.NOTAUTH), "tsig_bad_signature")
    except (dns.tsig.BadTime, dns.tsig.PeerBadTime):
        return Rejected(_bare(query, dns.rcode.NOTAUTH), "tsig_bad_time")
    except dns.exception.DNSException:
        return Rejected(_bare(query, dns.rcode.FORMERR), "malformed")
    if len(msg.question) != 1:
        return Rejected(_bare(query, dns.rcode.FORMERR), "malformed")
    question = msg.question[0]
    zone = question.name.to_text(omit_final_dot=True).lower()
    signed = msg.had_tsig
    opcode = msg.opcode()
    if opcode == dns.opcode.NOTIFY:
        return Request(Kind.NOTIFY, msg, zone, signed)
    if question.rdtype == T_AXFR:
        return Request(Kind.AXFR, msg, zone, signed)
    if question.rdtype == T_IXFR:
        soa = [rrset for rrset in msg.authority if rrset.rdtype == T_SOA]
        if not soa or not len(soa[0]):
            return Rejected(_bare(query, dns.rcode.FORMERR), "ixfr_without_soa")
        return Request(Kind.IXFR, msg, zone, signed, serial=int(next(iter(soa[0])).serial))
    if signed:
        return Request(Kind.SIGNED, msg, zone, signed)
    return Rejected(None, "not_ours")  # wants_primary's cheap test was wrong: the answerer's case


def refusal(request: Request, rcode: int, key: dns.tsig.Key | None) -> bytes:
    """An error reply to a parsed request (with the question; signed when the request was)."""
    head = _response_header(request.message, rcode, qdcount=1)
    return _sign_once(head + _question(request.message), request, key)


# -- transfers -------------------------------------------------------------------------------------------------

def axfr_records(content: ZoneContent) -> list[bytes]:
    """The whole zone in transfer order: SOA, every record, SOA (a snapshot of the moment)."""
    soa = content.soa()
    return [soa, *content.records_now(), soa]


def ixfr_records(content: ZoneContent, client_serial: int) -> tuple[str, list[bytes]]:
    """The IXFR answer's records and its form: ``"current"`` (the SOA alone), ``"incremental"`` or ``"full"``."""
    serial = content.serial
    if client_serial == serial or serial_lt(serial, client_serial):
        return "current", [content.soa()]
    chain = content.journal.since(client_serial)
    if not chain or chain[-1].new != serial:
        return "full", axfr_records(content)
    new_soa = content.soa()
    out = [new_soa]
    for delta in chain:
        out.append(content.soa(delta.old))
        out.extend(delta.deleted)
        out.append(content.soa(delta.new))
        out.extend(delta.added)
    out.append(new_soa)
    return "incremental", out


class TsigSigner:
    """Signs the messages of one response in order (RFC 8945 §5.3.1: each MAC covers the previous one)."""

    def __init__(self, key: dns.tsig.Key, request_mac: bytes, *, clock: float | None = None) -> None:
        self.key = key
        self._request_mac = request_mac
        self._ctx: object = None
        self._clock = clock

    def sign(self, message: bytes) -> bytes:
        qid = struct.unpack_from("!H", message)[0]
        rdata = dns.rdtypes.ANY.TSIG.TSIG(dns.rdataclass.ANY, dns.rdatatype.TSIG, self.key.algorithm, 0,
                                          TSIG_FUDGE, b"", qid, 0, b"")
        now = int(self._clock if self._clock is not None else time.time())
        first = self._ctx is None
        tsig, self._ctx = dns.tsig.sign(message, self.key, rdata, now, self._request_mac if first else None,
                                        self._ctx, True)
        owner = self.key.name.to_wire()
        assert isinstance(owner, bytes)
        rdata_wire = tsig.to_wire()
        assert isinstance(rdata_wire, bytes)
        arcount = struct.unpack_from("!H", message, 10)[0] + 1
        return b"".join((message[:10], arcount.to_bytes(2, "big"), message[12:], owner,
                         struct.pack("!HHIH", dns.rdatatype.TSIG, dns.rdataclass.ANY, 0, len(rdata_wire)),
                         rdata_wire))


def stream(request: Request, records: Iterable[bytes], key: dns.tsig.Key | None, *,
           target: int = MESSAGE_TARGET) -> Iterator[bytes]:
    """The transfer's messages, made one at a time: records packed up to ``target`` bytes each."""
    signer = TsigSigner(key, request.message.mac or b"") if key is not None and request.signed else None
    question = _question(request.message)
    first = True
    batch: list[bytes] = []
    size = 0
    for rr in records:
        if batch and size + len(rr) > target:
            yield _message(request, batch, question if first else b"", signer)
            first, batch, size = False, [], 0
        batch.append(rr)
        size += len(rr)
    if batch or first:
        yield _message(request, batch, question if first else b"", signer)


def udp_ixfr(request: Request, records: list[bytes], key: dns.tsig.Key | None, soa: bytes) -> bytes:
    """An IXFR answer over UDP: all of ``records`` when they fit the client's size, else ``soa`` alone."""
    limit = max(request.message.payload, UDP_DEFAULT) if request.message.edns >= 0 else UDP_DEFAULT
    signer = TsigSigner(key, request.message.mac or b"") if key is not None and request.signed else None
    question = _question(request.message)
    tsig_room = 120 if signer is not None else 0
    if 12 + len(question) + sum(len(rr) for rr in records) + tsig_room <= limit:
        return _message(request, records, question, signer)
    return _message(request, [soa], question, signer)


def notify_ack(request: Request, key: dns.tsig.Key | None) -> bytes:
    """The reply to a NOTIFY for a zone we serve: NOERROR, AA, the question echoed."""
    head = _response_header(request.message, dns.rcode.NOERROR, qdcount=1)
    return _sign_once(head + _question(request.message), request, key)


def sign_reply(request: Request, reply: bytes, key: dns.tsig.Key | None) -> bytes:
    """An ordinary reply to a verified signed query, signed in turn."""
    return _sign_once(reply, request, key)


def unsigned_query(request: Request) -> bytes:
    """The request without its TSIG (for the ordinary answerer)."""
    msg = request.message
    plain = dns.message.Message(id=msg.id)
    plain.flags = msg.flags
    plain.question = list(msg.question)
    if msg.edns >= 0:
        plain.use_edns(msg.edns, msg.ednsflags, msg.payload, options=list(msg.options))
    wire = plain.to_wire()
    assert isinstance(wire, bytes)
    return wire


def notify_message(zone: str, soa: bytes, qid: int, key: dns.tsig.Key | None) -> bytes:
    """A NOTIFY for ``zone`` carrying its SOA (RFC 1996 §3.7), signed with ``key`` when given."""
    qname = dns.name.from_text(zone).to_wire()
    assert isinstance(qname, bytes)
    head = _HEADER.pack(qid, (OP_NOTIFY << 11) | AA, 1, 1, 0, 0)
    wire = head + qname + struct.pack("!HH", T_SOA, 1) + soa
    if key is None:
        return wire
    return TsigSigner(key, b"").sign(wire)


def check_notify_reply(reply: bytes, qid: int, key: dns.tsig.Key | None, request_mac: bytes | None = None) -> str:
    """``"ok"`` for a NOTIFY's acknowledgement (QR, opcode NOTIFY, our ID, NOERROR), else what was wrong."""
    if len(reply) < 12:
        return "short"
    rid, flags = struct.unpack_from("!HH", reply)
    if rid != qid or not flags & QR or (flags >> 11) & 0xF != OP_NOTIFY:
        return "not_a_reply"
    rcode = flags & 0xF
    return "ok" if rcode == dns.rcode.NOERROR else dns.rcode.to_text(dns.rcode.Rcode.make(rcode)).lower()


# -- building messages ---------------------------------------------------------------------------------------

def _question(msg: dns.message.Message) -> bytes:
    q = msg.question[0]
    name = q.name.to_wire()
    assert isinstance(name, bytes)
    return name + struct.pack("!HH", q.rdtype, q.rdclass)


def _response_header(msg: dns.message.Message, rcode: int, *, qdcount: int, ancount: int = 0) -> bytes:
    flags = QR | (msg.flags & 0x7900) | (AA if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN) else 0)
    flags |= (msg.opcode() << 11) | (rcode & 0xF)
    return _HEADER.pack(msg.id, flags, qdcount, ancount, 0, 0)


def _message(request: Request, records: Sequence[bytes], question: bytes, signer: TsigSigner | None) -> bytes:
    head = _response_header(request.message, dns.rcode.NOERROR, qdcount=1 if question else 0,
                            ancount=len(records))
    wire = b"".join((head, question, *records))
    return signer.sign(wire) if signer is not None else wire


def _sign_once(reply: bytes, request: Request, key: dns.tsig.Key | None) -> bytes:
    if key is None or not request.signed:
        return reply
    return TsigSigner(key, request.message.mac or b"").sign(reply)


def _bare(query: bytes, rcode: int) -> bytes | None:
    """A header-only error reply (ID, opcode and RD kept), for requests that could not be parsed or verified."""
    if len(query) < 12 or query[2] & 0x80:
        return None
    qid, flags = struct.unpack_from("!HH", query)
    return _HEADER.pack(qid, QR | (flags & 0x7900) | (rcode & 0xF), 0, 0, 0, 0)
