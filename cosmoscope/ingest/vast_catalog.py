"""Finding files through the VAST Catalog instead of walking the tree.

A VAST cluster keeps its own table of file-system metadata, the VAST Catalog
(``tx.catalog()`` in vastdb): one row per file with ``parent_path`` (ending in "/"), ``name``,
``extension`` (no dot), ``size`` and ``mtime`` (nanoseconds). Asking it for the files under a
prefix, newer than a time and with some extensions is one query the cluster answers in
parallel, where a crawl must list every directory over NFS. :func:`catalog_entries` turns the
answer into the same :class:`~cosmoscope.ingest.crawl.FileEntry` objects the crawl yields, so
the rest of the ingest pipeline (unchanged-file skipping, workers, batching, lineage) is the same.

When to use which (also in docs/vast.md):

- **Walk** (``cosmoscope ingest PATH``): any file system; always current; the cost grows with
  the whole tree, changed or not.
- **VAST Catalog** (``--from-vast-catalog PREFIX``): the data lives on a VAST cluster with the
  Catalog enabled; the tree is large (millions of files) and few files are new; with
  ``--since`` only recent files are listed at all. The Catalog is a periodic snapshot, so files
  written after its last refresh appear on a later run; listed files are still checked with one
  ``stat`` each (no directory listings) and read from the local mount.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import posixpath
from collections.abc import Callable, Iterable, Iterator

from cosmoscope.errors import CatalogOpenError, InvalidArgumentError, StoreError
from cosmoscope.ingest.crawl import FileEntry, Shard, is_candidate

log = logging.getLogger(__name__)

#: Columns read from the VAST Catalog.
COLUMNS = ["parent_path", "name", "size", "mtime"]
#: Listed files checked before concluding that the prefix is not mounted where we look.
_MOUNT_CHECKS = 5


def endpoint_location(url: str):
    """A :class:`~cosmoscope.store.vast_config.VastLocation` for a ``vast://`` catalog URL (its
    endpoint and options are used) or a plain ``http(s)://HOST:PORT`` endpoint."""
    from cosmoscope.store.vast_config import VastLocation, parse_vast_url

    if url.lower().startswith("vast"):
        return parse_vast_url(url)
    if url.lower().startswith(("http://", "https://")) and "@" not in url:
        return VastLocation(url=url, endpoint=url.rstrip("/"), bucket="", schema=())
    raise InvalidArgumentError(f"cannot use {url!r} as a VAST endpoint; give http://HOST:PORT, https://HOST "
                               "or a vast:// catalog URL")


def catalog_entries(endpoint: str, prefix: str, *, mounted_at: str | os.PathLike | None = None,
                    since: dt.datetime | None = None, extensions: Iterable[str] | None = None,
                    shard: Shard | None = None, on_problem: Callable[[str, str], None] | None = None,
                    session=None) -> Iterator[FileEntry]:
    """Files under ``prefix`` as the VAST Catalog lists them, as local :class:`FileEntry` objects.

    Parameters
    ----------
    endpoint
        ``http(s)://HOST:PORT`` or a ``vast://`` URL of the cluster (credentials from the
        environment, as for the catalog).
    prefix
        A directory as the cluster names it, e.g. ``/cosmos7/2026``.
    mounted_at
        Where that directory is mounted on this machine (default: the same path).
    since
        Only files modified at or after this time (pushed down to the cluster).
    extensions
        Only files with these extensions (without the dot; pushed down).
    shard
        Keep only this machine's share (the same split as the crawl's).
    on_problem
        ``on_problem(path, reason)`` hears about listed files that are not on the mount.
    """
    from cosmoscope.store.vast import connect_session
    from cosmoscope.store.vast_config import credentials_from_env

    vprefix = "/" + prefix.strip("/")
    vprefix = vprefix if vprefix == "/" else vprefix + "/"
    local_root = os.path.abspath(os.fspath(mounted_at)) if mounted_at is not None else vprefix.rstrip("/") or "/"
    loc = endpoint_location(endpoint)
    if session is None:
        session = connect_session(loc, credentials_from_env())
    report = on_problem or (lambda path, reason: None)
    checked = missing = 0
    for parent, name, size, mtime_ns in _listing(session, loc, vprefix, since, extensions):
        if not is_candidate(name) or any(p.startswith(".") for p in parent[len(vprefix):].split("/") if p):
            continue  # hidden and temporary files, .snapshot directories: as the crawl skips them
        rel = posixpath.join(parent, name)[len(vprefix):]
        local = os.path.join(local_root, *rel.split("/"))
        if shard is not None and not shard.owns(local):
            continue
        try:
            st = os.stat(local)  # the Catalog is a snapshot: the file may have changed or gone since
        except OSError:
            missing += 1
            checked += 1
            if missing == checked == _MOUNT_CHECKS:
                raise InvalidArgumentError(
                    f"the VAST Catalog lists files under {vprefix} but none of the first {_MOUNT_CHECKS} is at "
                    f"{local_root} (e.g. {local}); give the local mount of {vprefix} with --mounted-at") from None
            report(local, f"listed in the VAST Catalog as {parent}{name} but not found here")
            continue
        checked += 1
        yield FileEntry(local, st.st_size, st.st_mtime_ns)


def _listing(session, loc, vprefix: str, since, extensions) -> Iterator[tuple[str, str, int, int]]:
    """(parent_path, name, size, mtime ns) of every file the Catalog lists under ``vprefix``."""
    import pyarrow as pa
    from ibis import _
    from vastdb import errors as E

    from cosmoscope.store.vast_config import describe

    pred = (_.element_type == "FILE") & _.parent_path.startswith(vprefix)
    if since is not None:
        since = since.astimezone(dt.timezone.utc).replace(tzinfo=None) if since.tzinfo else since
        pred = pred & (_.mtime >= since)
    exts = sorted({e.lower().lstrip(".") for e in extensions or () if e.strip(".")})
    if exts:
        pred = pred & _.extension.isin(exts)
    tx = session.transaction().__enter__()
    try:
        try:
            table = tx.catalog()
        except (E.Missing, E.NotFound) as exc:
            raise CatalogOpenError(f"the VAST Catalog is not available at {loc.endpoint} ({type(exc).__name__}); "
                                   "enable it on the cluster, or walk the tree instead (cosmoscope ingest PATH)") from None
        reader = table.select(columns=list(COLUMNS), predicate=pred, config=loc.query_config())
        try:
            for batch in reader:
                mtimes = batch.column("mtime").cast(pa.int64()).to_pylist()
                yield from zip(batch.column("parent_path").to_pylist(), batch.column("name").to_pylist(),
                               batch.column("size").to_pylist(), mtimes)
        finally:
            reader.close()
            del reader  # the SDK's readers stop when it is freed: before their transaction ends
    except CatalogOpenError:
        raise
    except Exception as exc:  # noqa: BLE001 - one sentence for the user
        if isinstance(exc, (InvalidArgumentError, StoreError)):
            raise
        raise StoreError(f"listing {vprefix} from the VAST Catalog failed: {describe(exc, loc)}") from exc
    finally:
        txid, tx.txid = tx.txid, None
        if txid is not None:
            try:
                session.api.rollback_transaction(txid)  # read only: nothing to commit
            except Exception as exc:  # noqa: BLE001
                log.debug("rollback of %x: %s", txid, exc)
