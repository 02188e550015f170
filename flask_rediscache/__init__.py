"""Redis as the production cache and session store of a Flask app."""

from __future__ import annotations

from . import signals
from .config import ConfigError
from .decorators import CachedResponse
from .extension import RedisCache
from .jinja import make_template_fragment_key

__version__ = "0.1.0"
__all__ = ["CachedResponse", "ConfigError", "RedisCache", "__version__", "make_template_fragment_key",
           "signals"]
