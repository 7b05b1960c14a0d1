"""DNSEndpoint -> records: ExternalDNS's ``crd`` source (``--source crd``), read the way ExternalDNS reads it.

The kind is ExternalDNS's own, ``externaldns.k8s.io/v1alpha1`` ``DNSEndpoint`` (the CRD is shipped as
``manifests/base/dnsendpoint-crd.yaml``, the same schema), so an existing object works unchanged. Each entry of
``spec.endpoints[]`` is one record set: ``dnsName`` (the name; it passes the common host name rule of
:mod:`syncer.hostnames` on the sources' common path, so an invalid one is skipped there), ``recordType``,
``targets``, ``recordTTL`` (seconds; absent or 0 = unset), ``providerSpecific`` (``coredns/group`` sets the
SkyDNS ``group``, as ExternalDNS's coredns provider reads it; other properties are ignored), ``labels`` and
``setIdentifier`` (ExternalDNS's own bookkeeping; ignored). The record types and their targets:

========  ==============================================  ==========================================
type      a target                                        canonical (what is stored, see syncer.keys)
========  ==============================================  ==========================================
A         an IPv4 address                                 ``192.0.2.7``
AAAA      an IPv6 address (not IPv4-mapped: served as A)  ``2001:db8::7``
CNAME     one host name (exactly one target)              ``shop.example.net``
TXT       any non-empty text, stored exactly              the text
MX        ``"<preference> <exchange host name>"``         ``10 mail.example.org``
SRV       ``"<priority> <weight> <port> <host name>"``    ``10 5 5060 sip.example.org``
NS        a name server's host name (a delegation)        ``ns1.example.net``
========  ==============================================  ==========================================

Host-name targets may end with a dot (``example.org.``), are lower-cased and turned into A-labels; an IP address is
not a host name (an MX, SRV or NS target must be a name). One bad target (an unknown type, an unparsable target,
no targets at all, a CNAME with several) skips that whole endpoint - as ExternalDNS skips an endpoint with an
illegal target - with a ``Skipped`` entry naming the endpoint and the reason; the object's other endpoints still
sync. An invalid ``recordTTL`` (negative, over 2147483647, not an integer) keeps the record without a TTL and says
so; so does an MX preference or SRV priority of 0, which SkyDNS reads as unset and CoreDNS serves as 10.
Endpoints of one object with the same name and type are merged (targets unioned, the smallest TTL).

Status (:func:`status_due`, :func:`status_body`): like ExternalDNS, ``status.observedGeneration`` is set to
``metadata.generation`` when they differ, by a PUT of the ``/status`` subresource (RBAC: ``update`` on
``dnsendpoints/status``); the controller does it once the object's records are committed.

The object's ``resource`` is ``dnsendpoint/<namespace>/<name>``. No other kind is read; nothing is published into
views (``--publish-view``). Not enabled by default: ``--source crd``, as in ExternalDNS.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skydns.names import InvalidNameError
from syncer.annotations import Annotations
from syncer.hostnames import normalize_hostname
from syncer.keys import BadTargetError, parse_mx, parse_srv, txt_rdata_length
from syncer.sources.base import Filters, HostNames, Source, Warnings
from syncer.sources.index import ClusterIndex, as_list, as_map, str_map
from syncer.sources.records import InvalidTargetError, ObjectRecords, classify_target

KIND = "DNSEndpoint"
API_VERSION = "externaldns.k8s.io/v1alpha1"
GROUP_PROPERTY = "coredns/group"
RECORD_TYPES = ("A", "AAAA", "CNAME", "TXT", "MX", "SRV", "NS")
TTL_MAX = 2147483647
TXT_RDATA_MAX = 65535
DESCRIBE_MAX = 200  # characters of an endpoint shown in a Skipped entry

Obj = dict[str, Any]


class BadEndpointError(ValueError):
    """An endpoint that is skipped as a whole; the message is the reason."""


@dataclass(frozen=True)
class Parsed:
    """One endpoint, checked: its canonical targets, TTL, group, and warnings that do not drop it."""

    record_type: str
    targets: tuple[str, ...]
    ttl: int | None
    group: str
    warnings: tuple[str, ...] = ()


def endpoints_of(obj: Mapping[str, Any]) -> list[Any]:
    """``spec.endpoints`` (an empty list when missing or not a list)."""
    return as_list(as_map(obj.get("spec")).get("endpoints"))


def describe(endpoint: Any) -> str:
    """How an endpoint is named in a ``Skipped`` entry: ``"<dnsName> <recordType> <targets>"``."""
    ep = as_map(endpoint)
    targets = ep.get("targets")
    shown = ",".join(str(t) for t in targets) if isinstance(targets, list) else str(targets or "")
    text = " ".join(str(p) for p in (ep.get("dnsName") or "?", ep.get("recordType") or "?", shown) if p != "")
    return text if len(text) <= DESCRIBE_MAX else text[:DESCRIBE_MAX] + "..."


def _host(raw: str) -> str:
    """A host-name target (MX exchange, SRV target, NS, CNAME): canonical, or :class:`BadEndpointError`."""
    try:
        kind, target = classify_target(raw)
    except InvalidTargetError as exc:
        raise BadEndpointError(str(exc)) from None
    if kind != "CNAME":
        raise BadEndpointError(f"{raw!r} is an IP address, not a host name")
    return target


def _address(raw: str, version: int) -> str:
    try:
        ip = ipaddress.ip_address(raw.strip())
    except ValueError:
        raise BadEndpointError(f"{raw!r} is not an IPv{version} address") from None
    if ip.version != version:
        raise BadEndpointError(f"{raw!r} is not an IPv{version} address")
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            raise BadEndpointError(f"{raw!r} is a scoped IPv6 address, which DNS cannot hold")
        if ip.ipv4_mapped is not None:
            raise BadEndpointError(f"{raw!r} is an IPv4-mapped address, which SkyDNS serves as A; use an A record")
    return str(ip)


def _txt(raw: str) -> str:
    if raw == "":
        raise BadEndpointError("an empty TXT text cannot be stored (SkyDNS reads a value without text as no record)")
    if txt_rdata_length(raw) > TXT_RDATA_MAX:
        raise BadEndpointError(f"the TXT text is {len(raw.encode('utf-8'))} bytes, over what one record holds")
    return raw


def _mx(raw: str) -> tuple[str, str | None]:
    try:
        preference, host = parse_mx(raw)
    except BadTargetError as exc:
        raise BadEndpointError(str(exc)) from None
    warning = f"MX preference 0 in {raw!r} is served as 10 (SkyDNS reads 0 as unset)" if preference == 0 else None
    return f"{preference} {_host(host)}", warning


def _srv(raw: str) -> tuple[str, str | None]:
    try:
        priority, weight, port, host = parse_srv(raw)
    except BadTargetError as exc:
        raise BadEndpointError(str(exc)) from None
    warning = f"SRV priority 0 in {raw!r} is served as 10 (SkyDNS reads 0 as unset)" if priority == 0 else None
    return f"{priority} {weight} {port} {_host(host)}", warning


def _target(record_type: str, raw: str) -> tuple[str, str | None]:
    """One canonical target of ``record_type`` and a warning; :class:`BadEndpointError` when it can't be one."""
    if record_type == "A":
        return _address(raw, 4), None
    if record_type == "AAAA":
        return _address(raw, 6), None
    if record_type == "TXT":
        return _txt(raw), None
    if record_type == "MX":
        return _mx(raw)
    if record_type == "SRV":
        return _srv(raw)
    return _host(raw), None  # CNAME, NS


def _ttl(raw: Any) -> tuple[int | None, str | None]:
    if raw is None or raw == 0:
        return None, None
    if isinstance(raw, bool) or not isinstance(raw, int):
        return None, f"recordTTL {raw!r} is not a number of seconds; using the default"
    if not 0 < raw <= TTL_MAX:
        return None, f"recordTTL {raw} is outside 1..{TTL_MAX}; using the default"
    return raw, None


def _group(raw: Any) -> str:
    for prop in as_list(raw):
        prop = as_map(prop)
        if prop.get("name") == GROUP_PROPERTY and isinstance(prop.get("value"), str):
            return str(prop["value"]).strip()
    return ""


def parse_endpoint(endpoint: Any) -> Parsed:
    """One ``spec.endpoints[]`` entry, checked (not its ``dnsName``: the common path checks names); raises
    :class:`BadEndpointError` with the reason it is skipped."""
    if not isinstance(endpoint, dict):
        raise BadEndpointError(f"an endpoint must be an object, not {type(endpoint).__name__}")
    raw_type = endpoint.get("recordType")
    record_type = raw_type.strip().upper() if isinstance(raw_type, str) else ""
    if record_type not in RECORD_TYPES:
        shown = f"{raw_type!r}" if raw_type not in (None, "") else "missing"
        raise BadEndpointError(f"record type {shown} is not supported (one of {', '.join(RECORD_TYPES)})")
    raw_targets = endpoint.get("targets")
    if not isinstance(raw_targets, list) or not raw_targets:
        raise BadEndpointError("no targets")
    if record_type == "CNAME" and len(raw_targets) > 1:
        raise BadEndpointError(f"a CNAME has exactly one target, not {len(raw_targets)}")
    targets: list[str] = []
    warnings: list[str] = []
    for raw in raw_targets:
        if not isinstance(raw, str):
            raise BadEndpointError(f"target {raw!r} is not a string")
        target, warning = _target(record_type, raw)
        targets.append(target)
        if warning:
            warnings.append(warning)
    ttl, ttl_warning = _ttl(endpoint.get("recordTTL"))
    if ttl_warning:
        warnings.insert(0, ttl_warning)
    return Parsed(record_type, tuple(sorted(set(targets))), ttl, _group(endpoint.get("providerSpecific")),
                  tuple(warnings))


def _name(endpoint: Any) -> str | None:
    """The normalised ``dnsName``; ``None`` when invalid (the common path reported it)."""
    raw = as_map(endpoint).get("dnsName")
    if not isinstance(raw, str):
        return None
    try:
        return normalize_hostname(raw)
    except InvalidNameError:
        return None


def _hostnames(obj: Mapping[str, Any], _ann: Annotations) -> tuple[HostNames, Warnings]:
    names: HostNames = []
    for endpoint in endpoints_of(obj):
        raw = as_map(endpoint).get("dnsName")
        if isinstance(raw, str):
            names.append((raw, False))
    return names, []


def _records(obj: Mapping[str, Any], _ann: Annotations, hostnames: HostNames, _index: ClusterIndex, _f: Filters,
             records: ObjectRecords) -> None:
    """Each endpoint whose name the common path kept (valid, inside the domain filter) becomes one record set."""
    in_scope = {name for name, _ in hostnames}
    for endpoint in endpoints_of(obj):
        raw_name = as_map(endpoint).get("dnsName")
        if not isinstance(raw_name, str):
            records.skip(describe(endpoint), "dnsName is missing")
            continue
        name = _name(endpoint)
        if name is None or name not in in_scope:
            continue
        try:
            parsed = parse_endpoint(endpoint)
            if parsed.record_type == "NS" and name.startswith("*."):
                raise BadEndpointError("an NS record (a delegation) cannot be a wildcard")
        except BadEndpointError as exc:
            records.skip(describe(endpoint), f"endpoint skipped: {exc}")
            continue
        for warning in parsed.warnings:
            records.warn(describe(endpoint), warning)
        records.put(name, parsed.record_type, parsed.targets, parsed.ttl, parsed.group or records.group)


# -- status ----------------------------------------------------------------------------------------------------


def status_due(obj: Mapping[str, Any], f: Filters | None = None) -> int | None:
    """The generation to write as ``status.observedGeneration``; ``None`` when it is already there, when the object
    has no generation (as in a manifest file) or when the filters leave the object out (``--namespace``,
    ``--label-filter``, ``--annotation-filter``: ExternalDNS lists only those objects, so only those get a status)."""
    meta = as_map(obj.get("metadata"))
    if f is not None and not _selected(meta, f):
        return None
    generation = meta.get("generation")
    if isinstance(generation, bool) or not isinstance(generation, int):
        return None
    observed = as_map(obj.get("status")).get("observedGeneration")
    return None if observed == generation else generation


def _selected(meta: Mapping[str, Any], f: Filters) -> bool:
    if f.namespace is not None and (meta.get("namespace") or "default") != f.namespace:
        return False
    if not f.labels.empty and not f.labels.matches(str_map(meta.get("labels"))):
        return False
    return f.annotations.empty or f.annotations.matches(str_map(meta.get("annotations")))


def status_body(obj: Mapping[str, Any], generation: int) -> Obj:
    """The body of the ``/status`` PUT: the object's identity, its ``resourceVersion`` (a stale one is a 409, and
    the watch brings the newer object) and the new status."""
    meta = as_map(obj.get("metadata"))
    metadata = {k: meta[k] for k in ("name", "namespace", "resourceVersion") if meta.get(k)}
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata,
            "status": {"observedGeneration": generation}}


SOURCE = Source(name="crd", kind=KIND, reads=(KIND,), hostnames=_hostnames, records=_records, default=False)
