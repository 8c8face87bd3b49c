"""Catalog URLs of VAST Database, their options, the credentials, and errors in words.

URL forms (all equivalent for an HTTP endpoint on 10.0.0.1 port 8080)::

    vast://http://10.0.0.1:8080/BUCKET/SCHEMA       the endpoint spelled out (as vastdb takes it)
    vast+http://10.0.0.1:8080/BUCKET/SCHEMA         shorter
    vast://10.0.0.1:8080/BUCKET/SCHEMA?tls=0        bare host: HTTPS unless tls=0

``SCHEMA`` may be nested (``BUCKET/parent/child``). Options go in the query string, e.g.
``?splits=8&subsplits=4&data_endpoints=http://10.0.0.2,http://10.0.0.3`` (see :data:`OPTIONS`).

Credentials never go in the URL: they come from ``COSMOSCOPE_VAST_ACCESS_KEY`` and
``COSMOSCOPE_VAST_SECRET_KEY``, else ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` (as
vastdb reads them). No message, log line or ``repr`` of cosmoscope contains them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from cosmoscope.errors import CatalogOpenError, InvalidArgumentError, UnknownNameError

#: URL options: name -> (type, default, what it does).
OPTIONS: dict[str, tuple[type, object, str]] = {
    "tls": (bool, None, "bare-host form only: 1 for HTTPS (default), 0 for plain HTTP"),
    "verify": (str, "1", "check the server's TLS certificate: 1, 0, or a CA bundle path"),
    "timeout": (float, 120.0, "seconds to wait for one answer from the cluster"),
    "connect_timeout": (float, 5.0, "seconds to wait for a connection before calling the endpoint unreachable"),
    "retries": (int, 6, "attempts for a transient failure (503 SlowDown, dropped connection, conflict)"),
    "retry_seconds": (float, 60.0, "longest total time spent retrying one operation"),
    "retry_wait": (float, 0.5, "first wait between attempts in seconds (doubles each time)"),
    "splits": (int, None, "QueryConfig.num_splits: disjoint parts of a table read in parallel (default: from row count)"),
    "subsplits": (int, None, "QueryConfig.num_sub_splits: parallel reads inside one split on the server (default 4)"),
    "rows_per_split": (int, 1_000_000, "QueryConfig.rows_per_split: rows per split when splits is not given "
                       "(default 1M: a 10M-row catalog is read as 10 splits, spread over the data endpoints)"),
    "limit_per_subsplit": (int, None, "QueryConfig.limit_rows_per_sub_split: rows per answer page (default 128Ki)"),
    "data_endpoints": (list, None, "comma-separated data endpoints; each gets a client thread, list one twice for two"),
    "queue_priority": (int, None, "QueryConfig.queue_priority: lower values are served first"),
    "write_batch": (int, 20_000, "rows per write transaction when the caller opened none"),
    "key_chunk": (int, 2_000, "keys looked up per select when an upsert matches rows"),
}

ACCESS_VARS = ("COSMOSCOPE_VAST_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
SECRET_VARS = ("COSMOSCOPE_VAST_SECRET_KEY", "AWS_SECRET_ACCESS_KEY")


@dataclass(frozen=True)
class VastLocation:
    """A parsed ``vast://`` URL: where the catalog lives and how to talk to it."""

    url: str                   #: the URL as given (never holds credentials)
    endpoint: str              #: ``http(s)://host[:port]`` for vastdb.connect
    bucket: str
    schema: tuple[str, ...]    #: schema path, outermost first
    options: dict = field(default_factory=dict)

    def option(self, name: str):
        value = self.options.get(name)
        return OPTIONS[name][1] if value is None else value

    @property
    def schema_path(self) -> str:
        return "/".join(self.schema)

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.endpoint)
        return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)

    def query_config(self, **overrides):
        """vastdb's ``QueryConfig`` with the URL's knobs (and ``overrides``)."""
        from vastdb.config import QueryConfig

        names = {"splits": "num_splits", "subsplits": "num_sub_splits", "rows_per_split": "rows_per_split",
                 "limit_per_subsplit": "limit_rows_per_sub_split", "data_endpoints": "data_endpoints",
                 "queue_priority": "queue_priority"}
        kwargs = {names[k]: self.option(k) for k in names if self.option(k) is not None}
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        return QueryConfig(**kwargs)


def parse_vast_url(url: str) -> VastLocation:
    """Read a ``vast://`` catalog URL (see the module docstring for the forms).

    >>> loc = parse_vast_url("vast://http://10.0.0.1:8080/cat/prod?splits=8")
    >>> loc.endpoint, loc.bucket, loc.schema, loc.option("splits")
    ('http://10.0.0.1:8080', 'cat', ('prod',), 8)
    >>> parse_vast_url("vast+https://vip.example/cat/a/b").schema
    ('a', 'b')
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("vast", "vast+http", "vast+https"):
        raise CatalogOpenError(f"not a VAST catalog URL: {_shown(url)}; write vast://HOST:PORT/BUCKET/SCHEMA")
    if scheme == "vast" and rest.lower().startswith(("http://", "https://")):
        inner, _, rest = rest.partition("://")
        http = inner.lower()
    else:
        http = {"vast+http": "http", "vast+https": "https"}.get(scheme)
    parts = urlsplit("x://" + rest)
    if parts.username is not None or parts.password is not None:
        raise CatalogOpenError(
            f"{_shown(url)} carries credentials; remove them from the URL and set COSMOSCOPE_VAST_ACCESS_KEY "
            "and COSMOSCOPE_VAST_SECRET_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) instead")
    if not parts.hostname:
        raise CatalogOpenError(f"{_shown(url)} names no endpoint; write vast://HOST:PORT/BUCKET/SCHEMA")
    try:
        port = parts.port
    except ValueError:
        raise CatalogOpenError(f"{_shown(url)}: the port is not a number") from None
    options = _options(parts.query, url)
    if options.get("tls") is not None:
        wanted = "https" if options["tls"] else "http"
        if http is not None and http != wanted:
            raise CatalogOpenError(f"{_shown(url)}: tls={int(options['tls'])} contradicts the {http} endpoint")
        http = wanted
    http = http or "https"
    path = [unquote(p) for p in parts.path.split("/") if p]
    if len(path) < 2:
        raise CatalogOpenError(f"{_shown(url)} needs a bucket and a schema after the endpoint: "
                               "vast://HOST:PORT/BUCKET/SCHEMA")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    endpoint = f"{http}://{host}" + (f":{port}" if port else "")
    return VastLocation(url=url, endpoint=endpoint, bucket=path[0], schema=tuple(path[1:]), options=options)


def _shown(url: str) -> str:
    """The URL with any ``user:password@`` part blanked, fit for a message."""
    return re.sub(r"://[^/@]*@", "://***@", url)


def _options(query: str, url: str) -> dict:
    out = {}
    for name, text in parse_qsl(query, keep_blank_values=True):
        if name not in OPTIONS:
            raise UnknownNameError("VAST URL option", name, OPTIONS)
        kind = OPTIONS[name][0]
        try:
            if kind is bool:
                if text.lower() not in ("0", "1", "true", "false", "yes", "no"):
                    raise ValueError(text)
                value = text.lower() in ("1", "true", "yes")
            elif kind is list:
                value = [e.strip() for e in text.split(",") if e.strip()] or None
            else:
                value = kind(text)
                if kind in (int, float) and value < 0:
                    raise ValueError(text)
        except ValueError:
            raise InvalidArgumentError(f"VAST URL option {name}={text!r} is not valid: {OPTIONS[name][2]}") from None
        out[name] = value
    return out


@dataclass(frozen=True)
class Credentials:
    access: str
    secret: str = field(repr=False)
    source: str  #: which environment variables they came from (names only)

    def __repr__(self) -> str:
        return f"Credentials(from {self.source})"


def credentials_from_env(environ=None) -> Credentials:
    """The access and secret key from the environment (the cosmoscope pair wins)."""
    env = os.environ if environ is None else environ
    for access_var, secret_var in zip(ACCESS_VARS, SECRET_VARS):
        access, secret = env.get(access_var), env.get(secret_var)
        if access and secret:
            return Credentials(access, secret, f"{access_var}/{secret_var}")
        if access or secret:
            missing = secret_var if access else access_var
            raise CatalogOpenError(f"{missing} is not set though its partner is; set both "
                                   f"{access_var} and {secret_var} to the cluster's S3 access and secret key")
    raise CatalogOpenError(
        "no VAST credentials: set COSMOSCOPE_VAST_ACCESS_KEY and COSMOSCOPE_VAST_SECRET_KEY "
        "(or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) to the cluster's S3 access and secret key")


# -- errors ----------------------------------------------------------------------------------

TRANSIENT, CONFLICT, LOST_TX, PERMANENT = "transient", "conflict", "lost transaction", "permanent"


def classify(exc: BaseException) -> str:
    """How to treat a failure from vastdb: retry it, or report it at once."""
    import requests
    import urllib3
    from vastdb import errors as E

    if isinstance(exc, (E.ServiceUnavailable, E.InternalServerError, E.RequestTimeout, E.ConnectionError,
                        E.InsufficientCapacity, requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                        urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)):
        return TRANSIENT
    if isinstance(exc, E.Conflict):
        return CONFLICT
    if isinstance(exc, E.HttpError) and exc.code in ("TabularInvalidTransaction", "NoSuchTransaction"):
        return LOST_TX
    if isinstance(exc, E.MissingTransaction):
        return LOST_TX
    return PERMANENT


def describe(exc: BaseException, loc: VastLocation, creds: Credentials | None = None) -> str:
    """A failure from vastdb as a sentence for a scientist; never includes credentials."""
    import requests
    from vastdb import errors as E

    where = f"VAST Database at {loc.endpoint}"
    if isinstance(exc, E.Forbidden):
        source = creds.source if creds else "/".join(ACCESS_VARS[:1] + SECRET_VARS[:1])
        return (f"{where} refused the credentials from {source} ({exc.code or 'AccessDenied'}): check the "
                "access and secret key, and that the key's identity policy allows tabular access")
    if isinstance(exc, E.MissingBucket) or (isinstance(exc, E.NotFound) and exc.code == "NoSuchBucket"):
        return (f"{where} has no bucket {loc.bucket!r}; create it (a database-enabled view) or fix the bucket "
                "in the catalog URL")
    if isinstance(exc, E.MissingSchema):
        return f"{where} has no schema {exc.schema!r} in bucket {exc.bucket!r}"
    if isinstance(exc, E.MissingTable):
        return f"{where} has no table {exc.table!r} in {exc.bucket}/{exc.schema}"
    if isinstance(exc, E.NotSupportedSchema):
        return f"{where} refused a column type: {exc.message or exc}"
    if isinstance(exc, E.HttpError):
        return f"{where} answered {exc.status} {exc.code or ''}: {exc.message or 'no details'}".replace("  ", " ")
    if isinstance(exc, (E.ConnectionError, requests.exceptions.ConnectionError)):
        return f"lost the connection to {where}"
    if isinstance(exc, requests.exceptions.Timeout):
        return f"{where} did not answer within {loc.option('timeout'):g} s"
    text = str(exc)
    if creds is not None:
        text = text.replace(creds.secret, "***").replace(creds.access, "***")
    return f"{where}: {type(exc).__name__}: {text}"
