#!/usr/bin/env bash
# UDP throughput and latency of dnssync-resolver against a native authoritative server (Knot) on the same names.
#
#   bench/resolver_qps.sh            (from the repository root; root needed only to apt-get missing tools)
#
# 10,000 names (A records) go into a local etcd and, as a zone file, into knotd. Each server is pinned to CPU 0
# (taskset -c 0) and dnsperf to CPU 1; after one warm-up pass over all names (which fills the resolver's answer
# cache), dnsperf runs 10 s, three times per server. Then bench/latency_probe.py
# asks at a fixed 2,000 queries/s to get latency percentiles (dnsperf prints only average and stddev).
# Everything it writes lives in one temporary directory; every process it starts is stopped on exit.
# Knobs: RUNS (3), SECONDS_PER_RUN (10), NAMES (10000), PROBE_RATE (2000), PROBE_SECONDS (10).
set -euo pipefail

RUNS=${RUNS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
NAMES=${NAMES:-10000}
PROBE_RATE=${PROBE_RATE:-2000}
PROBE_SECONDS=${PROBE_SECONDS:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$ROOT/.venv/bin/python"

WORK=$(mktemp -d -t dnssync-bench-XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

need() { command -v "$1" >/dev/null 2>&1; }
if ! need dnsperf || ! need knotd; then
  echo "installing dnsperf and knot (apt-get)..." >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsperf knot >/dev/null
fi
[ -x "$PY" ] || (cd "$ROOT" && make venv)

free_port() { "$PY" -c 'from resolver.server import free_dns_port; print(free_dns_port())'; }
export PYTHONPATH="$ROOT"

# --- etcd with 10,000 names -------------------------------------------------------------------------------
ETCD_PORT=$(free_port); PEER_PORT=$(free_port)
"$ROOT/.venv/bin/etcd" --name bench --data-dir "$WORK/etcd" --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" --listen-peer-urls "http://127.0.0.1:$PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" --initial-cluster "bench=http://127.0.0.1:$PEER_PORT" \
  --log-level warn --unsafe-no-fsync >"$WORK/etcd.log" 2>&1 &
PIDS+=($!)
ETCD="http://127.0.0.1:$ETCD_PORT"

"$PY" - "$ETCD" "$NAMES" "$WORK" <<'EOF'
import asyncio, sys, time, urllib.request
from aetcd import transactions
from skydns.etcd import EtcdClient, EtcdSettings
endpoint, count, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + 20
while True:
    try:
        urllib.request.urlopen(endpoint + "/health", timeout=1).read()
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.1)
names = [(f"h{i}.bench.test.", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}") for i in range(count)]
async def load() -> None:
    client = EtcdClient(EtcdSettings.from_env(endpoint, env={}))
    for start in range(0, count, 100):
        ops = [transactions.Put(f"/skydns/test/bench/h{i}".encode(), f'{{"host":"{ip}"}}'.encode())
               for i, (_, ip) in enumerate(names[start:start + 100], start)]
        await client.transaction(compare=[], success=ops, failure=[])
    await client.close()
asyncio.run(load())
with open(f"{work}/queries.txt", "w") as f:
    f.writelines(f"{n} A\n" for n, _ in names)
with open(f"{work}/bench.test.zone", "w") as f:
    f.write("$ORIGIN bench.test.\n$TTL 300\n@ SOA ns.dns.bench.test. hostmaster.bench.test. 1 7200 1800 86400 30\n"
            "@ NS ns.dns.bench.test.\nns.dns A 127.0.0.1\n")
    f.writelines(f"{n} A {ip}\n" for n, ip in names)
EOF

# --- the resolver, pinned to CPU 0 ---------------------------------------------------------------------------
RES_PORT=$(free_port); RES_HTTP=$(free_port)
taskset -c 0 "$ROOT/.venv/bin/dnssync-resolver" --zone bench.test. --etcd-endpoints "$ETCD" \
  --listen "127.0.0.1:$RES_PORT" --http-listen "127.0.0.1:$RES_HTTP" --log-level warning >"$WORK/resolver.log" 2>&1 &
PIDS+=($!)
ready() { "$PY" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$RES_HTTP/readyz', timeout=1)" 2>/dev/null; }
for _ in $(seq 200); do
  ready && break
  sleep 0.1
done
ready || { echo "resolver not ready" >&2; cat "$WORK/resolver.log" >&2; exit 1; }

# --- knotd with the same names, pinned to CPU 0 ----------------------------------------------------------------
KNOT_PORT=$(free_port)
mkdir -p "$WORK/knot"
cat >"$WORK/knot.conf" <<EOF
server:
    rundir: "$WORK/knot"
    listen: 127.0.0.1@$KNOT_PORT
database:
    storage: "$WORK/knot"
log:
  - target: stderr
    any: warning
zone:
  - domain: bench.test.
    file: "$WORK/bench.test.zone"
    journal-content: none
    zonefile-sync: -1
EOF
taskset -c 0 knotd -c "$WORK/knot.conf" >"$WORK/knot.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  dig +short +time=1 +tries=1 -p "$KNOT_PORT" @127.0.0.1 h1.bench.test A 2>/dev/null | grep -q . && break
  sleep 0.1
done

check() {  # both servers give the same answer for a sample name
  local a b
  a=$(dig +short -p "$RES_PORT" @127.0.0.1 h4242.bench.test A)
  b=$(dig +short -p "$KNOT_PORT" @127.0.0.1 h4242.bench.test A)
  [ -n "$a" ] && [ "$a" = "$b" ] || { echo "answers differ: resolver '$a' knot '$b'" >&2; exit 1; }
}
check

# --- measurements ----------------------------------------------------------------------------------------------
run_dnsperf() {  # port -> "qps avg_ms lost noerror%"
  taskset -c 1 dnsperf -s 127.0.0.1 -p "$1" -d "$WORK/queries.txt" -l "$SECONDS_PER_RUN" -c 4 -q 200 2>&1 \
    | awk '/Queries per second:/ {q=$4} /Average Latency \(s\):/ {a=$4*1000} /Queries lost:/ {l=$3}
           /Response codes:/ {r=$3 $4} END {printf "%d %.3f %s %s\n", q, a, l, r}'
}
declare -A QPS AVG
for server in resolver knot; do
  port=$RES_PORT; [ "$server" = knot ] && port=$KNOT_PORT
  # warm-up: every name asked once (fills the resolver's answer cache; the same pass for knot, for fairness)
  taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/queries.txt" -n 1 -c 4 -q 200 >/dev/null 2>&1
  QPS[$server]=""; AVG[$server]=""
  for run in $(seq "$RUNS"); do
    read -r q a lost rcodes < <(run_dnsperf "$port")
    echo "$server run $run: $q qps, avg $a ms, lost $lost, response codes $rcodes" >&2
    QPS[$server]+="$q "; AVG[$server]+="$a "
  done
  taskset -c 1 "$PY" "$ROOT/bench/latency_probe.py" 127.0.0.1 "$port" "$WORK/queries.txt" \
    --rate "$PROBE_RATE" --seconds "$PROBE_SECONDS" >"$WORK/probe-$server.json"
done

"$PY" - "$WORK" "${QPS[resolver]}" "${AVG[resolver]}" "${QPS[knot]}" "${AVG[knot]}" "$PROBE_RATE" <<'EOF'
import json, statistics, sys
work, rq, ra, kq, ka, rate = sys.argv[1:7]
rows = {"dnssync-resolver": (rq, ra), "knotd": (kq, ka)}
probe = {s: json.load(open(f"{work}/probe-{f}.json")) for s, f in (("dnssync-resolver", "resolver"), ("knotd", "knot"))}
med = {s: statistics.median(float(x) for x in q.split()) for s, (q, _) in rows.items()}
print(f"\nUDP, 10,000 names, server on CPU 0, dnsperf on CPU 1 (-c 4 -q 200), median of runs; p50/p99 at {float(rate):,.0f} qps")
print(f"{'server':<18}{'QPS runs':<28}{'QPS median':>11}{'avg ms':>8}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'lost':>6}{'vs knot':>9}")
for s, (q, a) in rows.items():
    p = probe[s]
    avg = statistics.median(float(x) for x in a.split())
    print(f"{s:<18}{q.strip():<28}{med[s]:>11,.0f}{avg:>8.3f}{p['p50_ms']:>8.3f}{p['p99_ms']:>8.3f}"
          f"{p['max_ms']:>8.3f}{p['lost']:>6}{med[s] / med['knotd']:>9.1%}")
EOF
