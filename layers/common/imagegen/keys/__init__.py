"""Provider keys: one types module, the resolver the chain asks, users' own keys, and key health checks."""
