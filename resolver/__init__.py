"""dnssync-resolver: an authoritative DNS server answering from a watch-fed copy of the SkyDNS records in etcd."""
