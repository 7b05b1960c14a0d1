"""The etcd side of the syncer: reading the current records, following them, and the guarded writer."""
