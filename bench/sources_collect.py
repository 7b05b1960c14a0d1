"""Sources at scale: time and memory of ``syncer.sources.collect`` alone (no etcd, no process start).

Builds N Services of one shape (or a mix of all shapes) plus the nodes, pods and EndpointSlices they need, runs
``collect`` a few times (each with cold caches, as in a ``--once`` process) and prints the best CPU time, the
endpoints produced, and the peak memory ``collect`` allocates (tracemalloc). Shapes: LoadBalancer (hostname +
status IP), NodePort (50 nodes, SRV), NodePort with ``externalTrafficPolicy: Local`` (one pod each), headless
(an EndpointSlice and a pod each), ExternalName, and ``mix`` (a quarter each of LoadBalancer, NodePort Local,
headless, ExternalName) plus 2,000 Ingresses.

Usage: ``.venv/bin/python bench/sources_collect.py [--services 10000] [--runs 5]``
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from syncer.config import SourceConfig
from syncer.model import ClusterSnapshot
from syncer.sources import collect
from syncer.sources.records import classify_target, classify_targets, normalize_hostname

CACHES = (normalize_hostname, classify_target, classify_targets)


def cold_collect(snap: ClusterSnapshot, config: SourceConfig) -> Any:
    """``collect`` as a ``dnssync --once`` process runs it: with the name and target caches empty (warm caches
    from an earlier run would make every later run, and its allocations, look cheaper than a real sync)."""
    for cache in CACHES:
        cache.cache_clear()
    return collect(snap, config)

HOSTNAME = "external-dns.alpha.kubernetes.io/hostname"


def _svc(i: int, spec: dict[str, Any], lb_ip: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": f"s{i}", "namespace": f"ns{i % 20}", "annotations": {HOSTNAME: f"s{i}.example.org"}},
        "spec": spec,
    }
    if lb_ip:
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": lb_ip}]}}
    return obj


def _ip(i: int) -> str:
    return f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"


def build(shape: str, n: int) -> ClusterSnapshot:
    snap = ClusterSnapshot()
    snap.nodes = [
        {"metadata": {"name": f"n{k}"}, "status": {"addresses": [
            {"type": "ExternalIP", "address": f"203.0.113.{k}"}, {"type": "InternalIP", "address": f"192.168.0.{k}"}]}}
        for k in range(1, 51)
    ]
    for i in range(n):
        kind = shape if shape != "mix" else ("lb", "local", "headless", "externalname")[i % 4]
        ns = f"ns{i % 20}"
        selector = {"app": f"a{i}"}
        pod = {"metadata": {"name": f"p{i}", "namespace": ns, "labels": selector},
               "spec": {"nodeName": f"n{i % 50 + 1}", "hostname": f"p{i}"},
               "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
        if kind == "lb":
            snap.services.append(_svc(i, {"type": "LoadBalancer", "clusterIP": "10.96.0.1"}, _ip(i)))
        elif kind == "nodeport":
            snap.services.append(_svc(i, {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30000 + i % 2000}]}))
        elif kind == "local":
            snap.services.append(_svc(i, {"type": "NodePort", "selector": selector, "externalTrafficPolicy": "Local",
                                          "ports": [{"port": 80, "nodePort": 30000 + i % 2000}]}))
            snap.pods.append(pod)
        elif kind == "headless":
            snap.services.append(_svc(i, {"type": "ClusterIP", "clusterIP": "None", "selector": selector}))
            snap.pods.append(pod)
            snap.endpointslices.append({
                "metadata": {"name": f"s{i}-x", "namespace": ns, "labels": {"kubernetes.io/service-name": f"s{i}"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": [_ip(i)], "conditions": {"ready": True},
                               "targetRef": {"kind": "Pod", "name": f"p{i}"}}],
            })
        elif kind == "externalname":
            snap.services.append(_svc(i, {"type": "ExternalName", "externalName": f"x{i}.example.net"}))
    if shape == "mix":
        snap.ingresses = [
            {"metadata": {"name": f"i{i}", "namespace": "web"},
             "spec": {"rules": [{"host": f"i{i}.example.org"}, {"host": f"j{i}.example.org"}]},
             "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}
            for i in range(2000)
        ]
    return snap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    config = SourceConfig(domain_filter=("example.org",))
    print(f"{'shape':<14}{'services':>9}{'ingresses':>10}{'endpoints':>10}{'best CPU ms':>12}{'peak MiB':>10}")
    for shape in ("lb", "nodeport", "local", "headless", "externalname", "mix"):
        snap = build(shape, args.services)
        best = float("inf")
        for _ in range(args.runs):
            start = time.process_time()
            result = cold_collect(snap, config)
            best = min(best, time.process_time() - start)
        tracemalloc.start()
        cold_collect(snap, config)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        print(f"{shape:<14}{len(snap.services):>9}{len(snap.ingresses):>10}{len(result.endpoints):>10}"
              f"{best * 1000:>12.0f}{peak:>10.1f}")


if __name__ == "__main__":
    main()
