"""Cost of the resolver's UDP read loop per datagram, this tree against an older revision of resolver/server.py.

64 queries are queued on the server's UDP socket from a client socket, then ``DnsServer._udp_readable()`` answers
them in one call (no event loop), in rounds; the responder is a real Answerer answering one name from its cache,
so the figure is a cached answer's whole path through the server. The two versions are alternated, best of 7.

    .venv/bin/python bench/udp_path_micro.py BASE_REVISION [ROUNDS]    # e.g. 5359b58 2000
"""
import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import dns.message  # noqa: E402

from resolver.answers import Answerer  # noqa: E402
from resolver.store import Store  # noqa: E402
from skydns.changes import KeyChange  # noqa: E402


def load(path: str, name: str):
    import functools

    import prometheus_client
    saved = prometheus_client.Counter, prometheus_client.Gauge
    prometheus_client.Counter = functools.partial(saved[0], registry=None)
    prometheus_client.Gauge = functools.partial(saved[1], registry=None)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    prometheus_client.Counter, prometheus_client.Gauge = saved
    return mod


def bench(mod, respond, rounds: int) -> float:
    server = mod.DnsServer(respond)
    server.bind("127.0.0.1", 0)
    addr = server.address
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    client.bind(("127.0.0.1", 0))
    client.setblocking(False)
    q = dns.message.make_query("www.skydns.test.", "A").to_wire()
    spent = 0
    for _ in range(rounds):
        for _ in range(64):
            client.sendto(q, addr)
        t0 = time.perf_counter_ns()
        server._udp_readable()
        spent += time.perf_counter_ns() - t0
        while True:
            try:
                client.recv(4096)
            except BlockingIOError:
                break
    client.close()
    server._udp_sock.close()
    server._tcp_sock.close()
    return spent / (rounds * 64)


def main() -> None:
    store = Store("/skydns")
    store.replace(5, [KeyChange("/skydns/test/skydns/www", b'{"host":"10.0.0.1"}', 5)])
    answerer = Answerer(store, ["skydns.test."])
    import resolver.server as now
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    old = subprocess.run(["git", "show", f"{sys.argv[1]}:resolver/server.py"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as saved:
        saved.write(old)
    before = load(saved.name, "server_before")
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    results = {"before": [], "now": []}
    for _ in range(7):  # interleaved, best of 7
        results["before"].append(bench(before, answerer.respond, rounds))
        results["now"].append(bench(now, answerer.respond, rounds))
    for k, v in results.items():
        v.sort()
        print(f"{k:6} ns/datagram: best {v[0]:.0f}  median {v[3]:.0f}  all {[round(x) for x in v]}")
    b, n = results["before"][0], results["now"][0]
    print(f"overhead (best vs best): {n - b:+.0f} ns/datagram ({(n - b) / b * 100:+.1f} %)")
    t0 = time.perf_counter_ns()
    for _ in range(1_000_000):
        time.perf_counter_ns()
    print(f"one perf_counter_ns call here: {(time.perf_counter_ns() - t0) / 1e6:.0f} ns")


if __name__ == "__main__":
    main()
