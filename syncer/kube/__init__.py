"""The Kubernetes side of the syncer: the API client, the reflectors and their projection caches, and the
manifest files that stand in for a cluster (``--from-manifests``) with their folder watch."""
