"""Media from outside: the safe fetcher, the media proxy, image validation and the offline placeholder drawing."""

from imagegen.media.proxy import CachedMedia, InlineMedia, MediaAnswer, MediaProxy, cache_key

__all__ = ["CachedMedia", "InlineMedia", "MediaAnswer", "MediaProxy", "cache_key"]
