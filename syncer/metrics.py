"""The syncer's Prometheus metrics (``dnssync_*``), defined once for every module that counts something."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENT_TO_COMMIT = Histogram(
    "dnssync_event_to_commit_seconds", "From a Kubernetes event (or file change) reaching us to its etcd commit",
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
WATCH_EVENTS = Counter("dnssync_watch_events_total", "Watch events received, by kind and type", ["kind", "type"])
RELISTS = Counter("dnssync_relists_total", "Lists after the first one, by kind and why", ["kind", "reason"])
PENDING_NAMES = Gauge("dnssync_pending_names", "DNS names waiting to be planned and written")
WRITES = Counter("dnssync_writes_total", "Keys written to etcd, by action (put, delete)", ["action"])
CONFLICTS = Counter("dnssync_conflicts_total",
                    "Records not written because another owner's records hold the name or key")
DRIFT_REPAIRS = Counter("dnssync_drift_repairs_total", "Owned records put back after someone changed them in etcd")
CACHED_OBJECTS = Gauge("dnssync_cached_objects", "Objects held in the projection caches, by kind", ["kind"])
LAST_FULL_SYNC = Gauge("dnssync_last_full_sync_timestamp_seconds", "Unix time of the last full reconcile written")
KUBE_API_UP = Gauge("dnssync_kube_api_up", "1 while the list/watch of this kind reaches the API server, 0 during an "
                    "outage or while access is denied", ["kind"])
KUBE_FORBIDDEN = Gauge("dnssync_kube_forbidden", "1 while the API server refuses this kind's list/watch (401/403)",
                       ["kind"])
WATCH_RESTARTS = Counter("dnssync_watch_restarts_total", "Watches restarted by us, by kind and why", ["kind", "reason"])
LEADER = Gauge("dnssync_leader", "1 while this replica leads (writes) for its owner id, 0 on a standby")
LEADER_CHANGES = Counter("dnssync_leader_changes_total", "Times this replica gained or lost the lead")
ADOPTIONS = Counter("dnssync_adoptions_total",
                    "Names adopted from ExternalDNS (--adopt-txt-owner): its records and TXTs replaced by ours")
FENCED_TXNS = Counter("dnssync_fenced_txns_total", "Write transactions refused because this replica no longer led")
