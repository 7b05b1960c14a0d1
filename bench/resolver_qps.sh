#!/usr/bin/env bash
# UDP throughput and latency of dnssync-resolver against a native authoritative server (Knot) on the same names,
# with one and with two server processes (resolver workers) or threads (knotd UDP workers).
#
#   bench/resolver_qps.sh            (from the repository root; root needed only to apt-get missing tools)
#
# 10,000 names (A records) go into a local etcd and, as a zone file, into knotd. Four servers are measured one
# after the other: dnssync-resolver --workers 1 and --workers 2, knotd with 1 and with 2 UDP threads. The
# one-process servers are pinned to SERVER_CPUS_1, the two-process ones to SERVER_CPUS_2, dnsperf to CLIENT_CPUS.
# With 4 or more CPUs the defaults are 0 / 0,1 / 2,3 (servers and client never share a core); with 2 CPUs they are
# 0 / 0,1 / 1, so with two workers (or threads) one of them shares CPU 1 with dnsperf: such a machine cannot show
# how two workers scale, only what they cost. dnsperf uses CLIENTS sockets (16), so that SO_REUSEPORT, which picks
# a worker by the client's address and port, spreads them over both workers.
# After one warm-up pass over all names (which fills the resolver's answer caches), dnsperf runs 10 s, three times
# per server. Then bench/latency_probe.py asks at a fixed 2,000 queries/s to get latency percentiles (dnsperf
# prints only average and stddev; the probe is one socket, hence one worker).
# Everything it writes lives in one temporary directory; every process it starts is stopped on exit.
# Knobs: RUNS (3), SECONDS_PER_RUN (10), NAMES (10000), PROBE_RATE (2000), PROBE_SECONDS (10), CLIENTS (16),
# SERVERS ("resolver-1 resolver-2 knot-1 knot-2"), SERVER_CPUS_1, SERVER_CPUS_2, CLIENT_CPUS.
set -euo pipefail

RUNS=${RUNS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
NAMES=${NAMES:-10000}
PROBE_RATE=${PROBE_RATE:-2000}
PROBE_SECONDS=${PROBE_SECONDS:-10}
CLIENTS=${CLIENTS:-16}
SERVERS=${SERVERS:-"resolver-1 resolver-2 knot-1 knot-2"}
SERVER_CPUS_1=${SERVER_CPUS_1:-0}
SERVER_CPUS_2=${SERVER_CPUS_2:-0,1}
if [ "$(nproc)" -ge 4 ]; then CLIENT_CPUS=${CLIENT_CPUS:-2,3}; else CLIENT_CPUS=${CLIENT_CPUS:-1}; fi
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

# --- the servers ---------------------------------------------------------------------------------------------
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
http_ok() { "$PY" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$1/readyz', timeout=1)" 2>/dev/null; }

start_resolver() {  # workers cpus -> sets PORT
  local http
  PORT=$(free_port); http=$(free_port)
  taskset -c "$2" "$ROOT/.venv/bin/dnssync-resolver" --zone bench.test. --etcd-endpoints "$ETCD" \
    --listen "127.0.0.1:$PORT" --http-listen "127.0.0.1:$http" --workers "$1" --log-level warning \
    >"$WORK/resolver-$1.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 300); do
    http_ok "$http" && return 0
    sleep 0.1
  done
  echo "resolver --workers $1 not ready" >&2; cat "$WORK/resolver-$1.log" >&2; exit 1
}

start_knot() {  # threads cpus -> sets PORT
  PORT=$(free_port)
  mkdir -p "$WORK/knot-$1"
  cat >"$WORK/knot-$1.conf" <<EOF
server:
    rundir: "$WORK/knot-$1"
    listen: 127.0.0.1@$PORT
    udp-workers: $1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$WORK/knot-$1"
log:
  - target: stderr
    any: warning
zone:
  - domain: bench.test.
    file: "$WORK/bench.test.zone"
    journal-content: none
    zonefile-sync: -1
EOF
  taskset -c "$2" knotd -c "$WORK/knot-$1.conf" >"$WORK/knot-$1.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 100); do
    dig +short +time=1 +tries=1 -p "$PORT" @127.0.0.1 h1.bench.test A 2>/dev/null | grep -q . && return 0
    sleep 0.1
  done
  echo "knotd with $1 threads does not answer" >&2; cat "$WORK/knot-$1.log" >&2; exit 1
}

SAMPLE="h$((NAMES / 2)).bench.test."
EXPECTED=$(awk -v name="$SAMPLE" '$1 == name {print $3}' "$WORK/bench.test.zone")
check() {  # the server gives the zone's answer for a sample name
  local a
  a=$(dig +short -p "$PORT" @127.0.0.1 "$SAMPLE" A)
  [ -n "$a" ] && [ "$a" = "$EXPECTED" ] || { echo "$1 answers '$a', the zone says '$EXPECTED'" >&2; exit 1; }
}

# --- measurements ----------------------------------------------------------------------------------------------
run_dnsperf() {  # port -> "qps avg_ms lost noerror%"
  taskset -c "$CLIENT_CPUS" dnsperf -s 127.0.0.1 -p "$1" -d "$WORK/queries.txt" -l "$SECONDS_PER_RUN" \
    -c "$CLIENTS" -q 200 2>&1 \
    | awk '/Queries per second:/ {q=$4} /Average Latency \(s\):/ {a=$4*1000} /Queries lost:/ {l=$3}
           /Response codes:/ {r=$3 $4} END {printf "%d %.3f %s %s\n", q, a, l, r}'
}
: >"$WORK/results.txt"
for server in $SERVERS; do
  kind=${server%-*}; n=${server##*-}
  cpus=$SERVER_CPUS_1; [ "$n" -gt 1 ] && cpus=$SERVER_CPUS_2
  case $kind in
    resolver) start_resolver "$n" "$cpus" ;;
    knot) start_knot "$n" "$cpus" ;;
    *) echo "unknown server $server (resolver-N or knot-N)" >&2; exit 2 ;;
  esac
  check "$server"
  # warm-up: every name asked once (fills the resolver's answer caches; the same pass for knot, for fairness)
  taskset -c "$CLIENT_CPUS" dnsperf -s 127.0.0.1 -p "$PORT" -d "$WORK/queries.txt" -n 1 -c "$CLIENTS" -q 200 \
    >/dev/null 2>&1
  qps=""; avg=""
  for run in $(seq "$RUNS"); do
    read -r q a lost rcodes < <(run_dnsperf "$PORT")
    echo "$server (CPUs $cpus) run $run: $q qps, avg $a ms, lost $lost, response codes $rcodes" >&2
    qps+="$q,"; avg+="$a,"
  done
  taskset -c "$CLIENT_CPUS" "$PY" "$ROOT/bench/latency_probe.py" 127.0.0.1 "$PORT" "$WORK/queries.txt" \
    --rate "$PROBE_RATE" --seconds "$PROBE_SECONDS" >"$WORK/probe-$server.json"
  echo "$server $cpus ${qps%,} ${avg%,}" >>"$WORK/results.txt"
  stop_server
done

"$PY" - "$WORK" "$PROBE_RATE" "$CLIENT_CPUS" "$CLIENTS" "$NAMES" <<'EOF'
import json, statistics, sys
work, rate, client_cpus, clients, count = sys.argv[1:6]
rows = [line.split() for line in open(f"{work}/results.txt") if line.strip()]
med = {s: statistics.median(float(x) for x in q.split(",")) for s, _, q, _ in rows}
names = {"resolver": ("dnssync-resolver", "workers"), "knot": ("knotd", "threads")}
print(f"\nUDP, {int(count):,} names, dnsperf on CPU {client_cpus} (-c {clients} -q 200), median of runs; "
      f"p50/p99 at {float(rate):,.0f} qps (one socket)")
print(f"{'server':<30}{'CPUs':<6}{'QPS runs':<28}{'QPS median':>11}{'avg ms':>8}{'p50 ms':>8}{'p99 ms':>8}"
      f"{'max ms':>8}{'lost':>6}{'vs knot, same count':>21}")
for server, cpus, q, a in rows:
    kind, n = server.rsplit("-", 1)
    p = json.load(open(f"{work}/probe-{server}.json"))
    avg = statistics.median(float(x) for x in a.split(","))
    knot = med.get(f"knot-{n}")
    ratio = f"{med[server] / knot:>21.1%}" if knot else f"{'-':>21}"
    name, unit = names.get(kind, (kind, "processes"))
    label = f"{name}, {n} {unit if n != '1' else unit[:-1]}"
    print(f"{label:<30}{cpus:<6}{q.replace(',', ' '):<28}{med[server]:>11,.0f}{avg:>8.3f}{p['p50_ms']:>8.3f}"
          f"{p['p99_ms']:>8.3f}{p['max_ms']:>8.3f}{p['lost']:>6}{ratio}")
EOF
