"""Redis as the production cache and session store of a Flask app."""

from __future__ import annotations

from . import signals
from .config import ConfigError
from .extension import RedisCache

__version__ = "0.1.0"
__all__ = ["ConfigError", "RedisCache", "__version__", "signals"]
