"""Developer tools, not part of the installed product: the demo and a throwaway local etcd."""
