"""The client commands of `imagegen`: they talk to a running stack over its public HTTP API, nothing else."""
