"""Turning ``app.config`` into :class:`~flask_rediscache.config.Settings`:
every value read by :class:`~flask_rediscache.config_values.Reader`, then the
rules across keys (which URL each purpose gets, credentials, overlapping
prefixes), after Flask-Caching's and Flask-Session's keys are mapped
(:func:`~flask_rediscache.config_peers.peer_keys`). The keys Flask and
Flask-Session own (the signing keys, ``SESSION_REDIS``...) are read by
:class:`~flask_rediscache.config_flask.FlaskKeys`.
"""

from __future__ import annotations

import logging
import re
from collections import ChainMap
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .config import (
    ALIAS_KEYS,
    BUILTIN_PURPOSES,
    LOCAL_CACHE_MODES,
    Settings,
    channel_key_prefix,
    location,
    purpose_url_key,
    timeout_seconds,
    warn_unknown_keys,
)
from .config_flask import FlaskKeys
from .config_peers import peer_keys, session_client_url
from .config_values import SCHEMES_TEXT
from .errors import ConfigError
from .masking import mask_url

__all__ = ["load_settings"]

logger = logging.getLogger("flask_rediscache")

CERT_REQS = ("required", "optional", "none")
_PURPOSE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class Loader(FlaskKeys):
    """Reads one config into :class:`~flask_rediscache.config.Settings`."""

    def replica_reads(self, sentinels: Any, cluster: Any) -> bool:
        """``REDIS_READ_FROM_REPLICAS``: only meaningful with Sentinel or Cluster."""
        value = self.flag("REDIS_READ_FROM_REPLICAS")
        if value and not sentinels and not cluster:
            raise self.fail("REDIS_READ_FROM_REPLICAS", value,
                            "False without REDIS_SENTINELS or REDIS_CLUSTER (a single server has no replicas "
                            "to read from)")
        return value

    def alias_url(self) -> str | None:
        """``redis://REDIS_HOST:REDIS_PORT/REDIS_DB`` when ``REDIS_URL`` is unset
        (:data:`~flask_rediscache.config.ALIAS_KEYS`)."""
        given = [key for key in ALIAS_KEYS if self.config.get(key) is not None]
        if not given:
            return None
        if self.get("REDIS_URL") is not None:
            logger.warning("flask-rediscache: %s ignored because REDIS_URL is set", ", ".join(given))
            return None
        host = self.text("REDIS_HOST") or "localhost"
        if any(c.isspace() or c in "/@?#" for c in host):
            raise self.fail("REDIS_HOST", host, "a host name or address, e.g. localhost")
        port = self.integer("REDIS_PORT") if self.config.get("REDIS_PORT") is not None else 6379
        db = self.integer("REDIS_DB") if self.config.get("REDIS_DB") is not None else 0
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        url = f"redis://{host}:{port}/{db}"
        logger.info("flask-rediscache: REDIS_URL=%s built from %s; prefer setting REDIS_URL",
                    url, ", ".join(given))
        return url

    # -- the broadcast purpose and named purposes ----------------------------
    def purposes(self, base: str, username: str | None, password: str | None) -> dict[str, str]:
        """``REDIS_PURPOSES`` -> ``{name: URL}``; each URL from ``REDIS_<NAME>_URL``, else ``base``."""
        key = "REDIS_PURPOSES"
        value = self.get(key)
        expected = ('a list of lower-case names such as ["queue"] (letters, digits, _), other than '
                    + ", ".join(BUILTIN_PURPOSES))
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise self.fail(key, value, expected)
        out: dict[str, str] = {}
        for name in value:
            if (not isinstance(name, str) or not _PURPOSE_RE.match(name) or name in BUILTIN_PURPOSES
                    or name in out):
                raise self.fail(key, value, expected)
            url_key = purpose_url_key(name)
            url = self.optional_url(url_key) or base
            out[name] = self.credentials(url, username, password)
        return out

    # -- everything -----------------------------------------------------------
    def missing_url(self) -> ConfigError:
        return self.error(
            "REDIS_URL is not set: expected a URL such as redis://localhost:6379/0 (accepted schemes: "
            f"{SCHEMES_TEXT}). memory:// is only chosen automatically when the app is in debug or "
            "testing mode when the extension is created; app.run(debug=True) turns debug on too late "
            'for that. Set REDIS_URL, or FLASK_DEBUG=1 / app.config["DEBUG"] = True before '
            "RedisCache(app) / init_app(app)")

    def load(self) -> Settings:
        warn_unknown_keys(self.config)
        alias = self.alias_url()  # first: it warns when REDIS_URL makes it moot
        url = self.optional_url("REDIS_URL") or alias
        cache_url = self.optional_url("REDIS_CACHE_URL")
        session_url = self.optional_url("REDIS_SESSION_URL")
        sentinels = self.sentinels()
        cluster = self.cluster()
        session = self.flag("REDIS_SESSION")
        username = self.text("REDIS_USERNAME")
        password = self.text("REDIS_PASSWORD")
        if username == "":
            username = None
        if password == "":
            password = None
        # Flask-Session's SESSION_REDIS: that client serves the session purpose.
        session_client = self.session_client() if session and session_url is None else None
        client_url = session_client_url(session_client)
        session_covered = session_url is not None or not session or session_client is not None
        covered = cache_url is not None and session_covered
        if url is None and not covered and not sentinels and not cluster:
            if not self.debug:
                raise self.missing_url()
            logger.warning("flask-rediscache: REDIS_URL is not set; using memory:// (in-process, not shared)")
            url = "memory://"
        master = self.text("REDIS_SENTINEL_MASTER")
        if sentinels and not master:
            raise self.fail("REDIS_SENTINEL_MASTER", master, "the master's service name when REDIS_SENTINELS "
                                                             "is set")
        handler = self.get("REDIS_ERROR_HANDLER")
        if handler is not None and not callable(handler):
            raise self.fail("REDIS_ERROR_HANDLER", handler, "a callable (method=, returning=, exception=)")
        race_key = "REDIS_RACE_CONDITION_TTL"
        race = None if self.get(race_key) is None else self.seconds(race_key)
        reqs = self.get("REDIS_SSL_CERT_REQS")
        if reqs not in CERT_REQS:
            raise self.fail("REDIS_SSL_CERT_REQS", reqs, " or ".join(repr(r) for r in CERT_REQS))
        endpoint = self.text("REDIS_HEALTH_ENDPOINT")
        if endpoint is not None and not endpoint.startswith("/"):
            raise self.fail("REDIS_HEALTH_ENDPOINT", endpoint,
                            'a path starting with "/", e.g. "/health/redis"')
        # With Sentinel or Cluster the URL only carries credentials and the db.
        base = url or ("redis://" if sentinels or cluster else "memory://")
        cache_url = self.credentials(cache_url or base, username, password)
        if session_client is not None:
            session_url = client_url or cache_url
        session_url = self.credentials(session_url or (base if session else cache_url), username, password)
        cluster = tuple(self.credentials(seed, username, password) for seed in cluster)
        namespace = self.prefix("REDIS_NAMESPACE")
        cable_url = self.credentials(self.optional_url("REDIS_CABLE_URL") or base, username, password)
        channel_prefix = (f"{namespace}-cable" if self.get("REDIS_CHANNEL_PREFIX") is None
                          else self.prefix("REDIS_CHANNEL_PREFIX"))
        settings = Settings(
            cache_url=cache_url,
            session_url=session_url,
            fail_open=self.flag("REDIS_FAIL_OPEN"),
            username=username,
            password=password,
            connection_options=self.connection_options(),
            connect_timeout=self.seconds("REDIS_CONNECT_TIMEOUT"),
            read_timeout=self.seconds("REDIS_READ_TIMEOUT"),
            write_timeout=self.seconds("REDIS_WRITE_TIMEOUT"),
            reconnect_attempts=self.integer("REDIS_RECONNECT_ATTEMPTS"),
            reconnect_delay=self.seconds("REDIS_RECONNECT_DELAY"),
            reconnect_delay_max=self.seconds("REDIS_RECONNECT_DELAY_MAX"),
            pool_size=self.integer("REDIS_POOL_SIZE"),
            pool_timeout=self.seconds("REDIS_POOL_TIMEOUT"),
            namespace=namespace,
            default_timeout=timeout_seconds(self.number("REDIS_DEFAULT_TIMEOUT"), "REDIS_DEFAULT_TIMEOUT"),
            race_condition_ttl=race,
            compress_threshold=self.integer("REDIS_COMPRESS_THRESHOLD"),
            error_handler=handler,
            breaker_threshold=self.integer("REDIS_CIRCUIT_BREAKER_THRESHOLD"),
            breaker_cooldown=self.seconds("REDIS_CIRCUIT_BREAKER_COOLDOWN"),
            sentinels=sentinels,
            sentinel_master=master,
            sentinel_password=self.text("REDIS_SENTINEL_PASSWORD"),
            cluster=cluster,
            ssl_ca_certs=self.text("REDIS_SSL_CA_CERTS"),
            ssl_certfile=self.text("REDIS_SSL_CERTFILE"),
            ssl_keyfile=self.text("REDIS_SSL_KEYFILE"),
            ssl_cert_reqs=reqs,
            session=session,
            session_prefix=self.prefix("REDIS_SESSION_PREFIX"),
            health_endpoint=endpoint,
            secret_key=self.secret_key(),
            secret_key_fallbacks=self.secret_key_fallbacks(),
            cable_url=cable_url,
            channel_prefix=channel_prefix,
            cable_configured=(self.get("REDIS_CABLE_URL") is not None
                              or self.get("REDIS_CHANNEL_PREFIX") is not None),
            cable_history=self.integer("REDIS_CABLE_HISTORY"),
            cable_max_stream_seconds=self.seconds("REDIS_CABLE_MAX_STREAM_SECONDS"),
            purposes=MappingProxyType(self.purposes(base, username, password)),
            cache_enabled=self.flag("REDIS_CACHE_ENABLED"),
            read_from_replicas=self.replica_reads(sentinels, cluster),
            enable_signals=self.flag("REDIS_ENABLE_SIGNALS"),
            source_check=bool(self.peer_flag("CACHE_SOURCE_CHECK", False)),
            session_client=session_client,
            session_permanent=self.peer_flag(
                "SESSION_PERMANENT", True if self.config.get("SESSION_TYPE") is not None else None),
            session_id_bytes=self.session_id_bytes(),
            local_cache=self.local_cache(url, cache_url, cluster),
            local_cache_size=self.integer("REDIS_LOCAL_CACHE_SIZE"),
            local_cache_max_bytes=self.integer("REDIS_LOCAL_CACHE_MAX_BYTES"),
            local_cache_ttl=self.seconds("REDIS_LOCAL_CACHE_TTL"),
        )
        self.check_overlaps(settings)
        return settings

    def local_cache(self, url: str | None, cache_url: str, cluster: tuple[str, ...]) -> str:
        """``REDIS_LOCAL_CACHE`` as "" (off), "request" or "process"; "process"
        needs invalidation messages, which neither a cluster (one tracking
        connection per primary, resubscribed on every slot move: not built)
        nor memory:// (no server) can send."""
        key = "REDIS_LOCAL_CACHE"
        value = self.get(key)
        if value is None or value is False:
            return ""
        if value not in LOCAL_CACHE_MODES or value is True:
            raise self.fail(key, value, 'False, "request" or "process"')
        if value == "process":
            if cluster:
                raise self.error(f'{key} = "process" is not supported with Redis Cluster: its '
                                 'invalidation messages would need one tracking connection per '
                                 'primary; use "request" instead')
            if cache_url.startswith("memory://"):
                raise self.error(f'{key} = "process" needs a Redis server (memory:// sends no '
                                 'invalidation messages); use "request" instead')
        return str(value)

    def check_overlaps(self, settings: Settings) -> None:
        """Two purposes whose key prefixes overlap on one server and db are an error.

        ``clear()`` deletes ``<namespace>:*``: with ``REDIS_NAMESPACE="shop"``
        and ``REDIS_SESSION_PREFIX="shop:session"`` on the same db it would
        delete every session. Prefixes are compared as key prefixes (``a``
        overlaps ``b`` when ``b + ":"`` starts with ``a + ":"``).
        """
        purposes = [("REDIS_NAMESPACE", settings.namespace, settings.cache_url)]
        if settings.session:
            purposes.append(("REDIS_SESSION_PREFIX", settings.session_prefix, settings.session_url))
        purposes.append(("REDIS_CHANNEL_PREFIX", channel_key_prefix(settings.channel_prefix),
                         settings.cable_url))
        for i, (key_a, prefix_a, url_a) in enumerate(purposes):
            for key_b, prefix_b, url_b in purposes[i + 1:]:
                if location(url_a, settings) != location(url_b, settings):
                    continue
                a, b = prefix_a + ":", prefix_b + ":"
                if a.startswith(b) or b.startswith(a):
                    raise self.error(
                        f"{key_a}={prefix_a!r} and {key_b}={prefix_b!r} overlap on the same Redis server "
                        f"and db ({mask_url(url_a)}): clearing one would delete the other's keys; expected "
                        "prefixes where neither is a prefix of the other (e.g. REDIS_NAMESPACE='cache', "
                        "REDIS_SESSION_PREFIX='session'), or separate databases (REDIS_SESSION_URL)")


def load_settings(config: Mapping[str, Any], *, debug: bool) -> Settings:
    """Validate ``config`` (``app.config``; missing keys read as
    :data:`~flask_rediscache.config.DEFAULTS`) and return :class:`~flask_rediscache.config.Settings`.

    ``debug`` is ``app.debug or app.testing``: only then does a missing
    ``REDIS_URL`` fall back to ``memory://`` and a missing ``SECRET_KEY`` to a
    random per-process key (each with a warning); in production both are
    errors, because a per-process cache silently breaks sessions across
    gunicorn workers and a random key breaks them on every restart.
    """
    peers = peer_keys(config)
    peers.log()
    merged: Mapping[str, Any] = ChainMap(peers.overlay, dict(config)) if peers.overlay else config
    return Loader(merged, debug, peers.sources).load()
