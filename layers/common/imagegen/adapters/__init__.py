"""Adapters: AWS-backed implementations of the domain's ports."""
