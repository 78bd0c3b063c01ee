"""Adapters: the AWS and HTTP implementations of the ports the domain declares."""
