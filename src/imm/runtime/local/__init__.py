"""The local runtime: replicas are processes on this machine, the ingress is nginx."""
