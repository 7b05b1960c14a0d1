"""dnssync: Kubernetes Services and Ingresses -> SkyDNS records in etcd (source -> endpoints -> plan -> writer)."""
