"""The local stack: the service's functions, triggers and AWS resources in one process, from template.yaml."""

from imagegen.local.stack import LocalStack, LocalStackError

__all__ = ["LocalStack", "LocalStackError"]
