"""The provider chain as a package: links and keys, one attempt, hedging, async pending state, the failure report."""

from imagegen.chain.core import Chain
from imagegen.chain.links import Link, Skip

__all__ = ["Chain", "Link", "Skip"]
