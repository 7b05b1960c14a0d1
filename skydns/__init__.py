"""The SkyDNS record format shared by the syncer and the resolver.

* :mod:`skydns.names` - DNS name <-> etcd key (pure)
* :mod:`skydns.record` - the JSON value, its codec and what record types it yields (pure)
* :mod:`skydns.etcd` - connection settings (``ETCD_*``) and a safe aetcd client (thin I/O)
* :mod:`skydns.settings` - booleans and durations as both command lines read them (pure)
* :mod:`skydns.listwatch` - the load / apply / resume / reload loop both list/watch sides share
* :mod:`skydns.mirror` - the etcd side of it: an exact in-memory copy of a prefix, kept by a watch
* :mod:`skydns.changes` - the key changes the mirror hands its store
* :mod:`skydns.http` - ``/healthz``, ``/readyz`` and ``/metrics`` for both processes
"""

from skydns.names import (
    DEFAULT_PREFIX,
    InvalidKeyError,
    InvalidNameError,
    key_labels,
    key_to_name,
    name_labels,
    name_to_key,
    normalize_name,
    normalize_prefix,
)
from skydns.record import HostKind, Record, RecordDecodeError, decode, encode, host_kind, parse_ip, record_types

__all__ = [
    "DEFAULT_PREFIX",
    "HostKind",
    "InvalidKeyError",
    "InvalidNameError",
    "Record",
    "RecordDecodeError",
    "decode",
    "encode",
    "host_kind",
    "key_labels",
    "key_to_name",
    "name_labels",
    "name_to_key",
    "normalize_name",
    "normalize_prefix",
    "parse_ip",
    "record_types",
]
