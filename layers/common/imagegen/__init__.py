"""imagegen: serverless image generation with provider fallbacks."""

from imagegen import log_filters

__version__ = "0.1.0"

# Every function, the local stack and the CLI import the package first: no signed URL reaches a log line.
log_filters.install()
