"""imagegen: serverless image generation with provider fallbacks."""

__version__ = "0.1.0"
