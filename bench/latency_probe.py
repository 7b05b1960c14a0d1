"""Per-query UDP latency at a fixed query rate: ``python bench/latency_probe.py HOST PORT NAMES_FILE``.

dnsperf reports only the average and standard deviation of latency; this sends queries at a fixed rate
(default 2,000 per second, open loop: the schedule does not wait for answers), matches each answer to its
query by ID and prints percentiles. The client is Python, so each number includes some tens of microseconds
of its own overhead; both servers in ``resolver_qps.sh`` are measured with the same client.

Output: one JSON line ``{"sent", "answered", "lost", "p50_ms", "p90_ms", "p99_ms", "max_ms"}``.
"""

from __future__ import annotations

import argparse
import json
import random
import selectors
import socket
import struct
import time


def build_query(name: str, qid: int) -> bytes:
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, round(p / 100 * (len(sorted_values) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("names", help="file with one 'name [type]' per line (dnsperf's format); A is asked")
    ap.add_argument("--rate", type=float, default=2000.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    args = ap.parse_args()

    with open(args.names) as f:
        names = [line.split()[0] for line in f if line.strip()]
    random.Random(7).shuffle(names)
    queries = [build_query(n, 0)[2:] for n in names]  # without the ID, prepended per send

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.connect((args.host, args.port))
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)

    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    interval = 1.0 / args.rate
    start = time.perf_counter()
    measure_from = start + args.warmup
    end = measure_from + args.seconds
    i = sent = 0
    next_send = start
    while True:
        now = time.perf_counter()
        if now >= next_send and now < end:
            qid = i & 0xFFFF
            sock.send(struct.pack("!H", qid) + queries[i % len(queries)])
            if next_send >= measure_from:
                sent_at[qid] = now
                sent += 1
            else:
                sent_at.pop(qid, None)
            i += 1
            next_send += interval
            continue
        if now >= end + 1.0:  # one second's grace for the last answers
            break
        timeout = max(0.0, min(next_send, end + 1.0) - now) if now < end else 0.05
        for _ in sel.select(timeout):
            while True:
                try:
                    data = sock.recv(65535)
                except BlockingIOError:
                    break
                got = time.perf_counter()
                if len(data) >= 2:
                    t0 = sent_at.pop(struct.unpack("!H", data[:2])[0], None)
                    if t0 is not None:
                        latencies.append(got - t0)
    latencies.sort()
    ms = [v * 1000 for v in latencies]
    print(json.dumps({"rate": args.rate, "sent": sent, "answered": len(ms), "lost": sent - len(ms),
                      "p50_ms": round(percentile(ms, 50), 3), "p90_ms": round(percentile(ms, 90), 3),
                      "p99_ms": round(percentile(ms, 99), 3), "max_ms": round(ms[-1], 3) if ms else None}))


if __name__ == "__main__":
    main()
