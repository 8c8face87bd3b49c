"""A wire-level fake VAST Database server for tests.

It speaks the HTTP protocol of the ``vastdb`` SDK (S3-style paths
``/{bucket}/{schema}/{table}?{verb}``, ``tabular-*`` headers, flatbuffers bodies, Arrow IPC
rows), checks AWS SigV4 signatures, keeps schemas and tables in memory with real
transactions, evaluates pushed-down predicates with ``pyarrow.compute`` and can inject
faults. Tests drive the real SDK against it::

    with FakeVastServer() as server:
        session = vastdb.connect(endpoint=server.endpoint, access=server.access_key,
                                 secret=server.secret_key)
        with session.transaction() as tx:
            schema = tx.bucket(server.bucket).create_schema("s")

Run ``python -m tests.fakevast --port 9090 --data-dir DIR`` to serve from a
separate process (for kill -9 tests).
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from dataclasses import dataclass

import pyarrow as pa

from . import catalog, state
from .handler import HTTPServer, Handler, RequestRecord
from .state import ROW_ID_FIELD

DEFAULT_ACCESS_KEY = "FAKEVASTACCESSKEY0001"
DEFAULT_SECRET_KEY = "fake/vast/secret/key/for/tests/only"


@dataclass
class Fault:
    """A pending injected fault (see ``FakeVastServer.fail_next`` and friends)."""

    kind: str                    # "fail", "drop" or "truncate"
    remaining: int
    verb: str | None
    status: int = 503
    code: str = "ServiceUnavailable"
    after_apply: bool = False

    def matches(self, verb: str) -> bool:
        return self.remaining > 0 and (self.verb is None or self.verb == verb)


class FakeVastServer:
    """An in-process VAST Database endpoint speaking the ``vastdb`` wire protocol.

    Parameters
    ----------
    buckets : sequence of str
        Buckets that exist from the start; ``bucket`` is the first one.
    access_key, secret_key : str
        The only credentials accepted (more can be added to ``credentials``).
    host, port : str, int
        Where to listen; port 0 picks a free port (kept across ``stop``/``start``).
    data_dir : path, optional
        Persist the committed state there after every commit and load it on start, so a
        new server object (or process) continues where the last one stopped.
    rows_per_row_group : int
        Rows per row group when dividing a table between query splits and sub-splits
        (VAST uses 2**16; lower it to exercise multi-split reads on small tables).
    max_cell_bytes : int or None
        Largest string/binary cell accepted by inserts and updates.
    catalog : bool
        Create an empty VAST Catalog table from the start (``add_catalog_entries`` also
        creates it).

    Attributes
    ----------
    endpoint, bucket, access_key, secret_key
        What a client needs: ``vastdb.connect(endpoint=..., access=..., secret=...)``.
    requests : list of RequestRecord
        Every request served, in order (``count`` and ``clear_log`` help assertions).
    latency : float
        Seconds to wait before answering each request (0 by default).
    internal_errors : list of str
        Tracebacks of bugs in the fake itself (answered as 500 InternalError).
    """

    def __init__(self, buckets=("cosmoscope",), *, access_key: str = DEFAULT_ACCESS_KEY,
                 secret_key: str = DEFAULT_SECRET_KEY, host: str = "127.0.0.1", port: int = 0,
                 data_dir=None, vast_version=(5, 5, 0, 0), rows_per_row_group: int = 2**16,
                 max_cell_bytes: int | None = 128 * 1024, catalog: bool = False,
                 verify_signatures: bool = True):
        if isinstance(buckets, str):
            buckets = (buckets,)
        self.bucket = buckets[0]
        self.access_key = access_key
        self.secret_key = secret_key
        self.credentials = {access_key: secret_key}
        self.host = host
        self.port = port
        self.server_header = "vast " + ".".join(str(v) for v in vast_version)
        self.rows_per_row_group = rows_per_row_group
        self.max_cell_bytes = max_cell_bytes
        self.verify_signatures = verify_signatures
        self.latency = 0.0
        self.db = state.Database(buckets, data_dir)
        self.internal_errors: list[str] = []
        self._records: list[RequestRecord] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None
        if catalog:
            self._ensure_catalog()

    # ---- lifecycle
    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> "FakeVastServer":
        if self._httpd is not None:
            return self
        self._httpd = HTTPServer((self.host, self.port), Handler)
        self._httpd.fake = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fakevast-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop like a crashed server: open connections are cut, open transactions lost."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        for conn in list(self._connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._httpd = self._thread = None
        self.db.abort_all()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> "FakeVastServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def connect(self, **kwargs):
        """A ``vastdb`` session on this server (extra keyword arguments go to ``vastdb.connect``)."""
        import vastdb

        return vastdb.connect(endpoint=self.endpoint, access=self.access_key, secret=self.secret_key, **kwargs)

    # ---- request log
    def _log(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def count(self, verb: str | None = None, *, table: str | None = None, status: int | None = None) -> int:
        """How many requests (of this verb, on this table, with this status) were served."""
        return sum(1 for r in self.requests if (verb is None or r.verb == verb)
                   and (table is None or r.table == table) and (status is None or r.status == status))

    def clear_log(self) -> None:
        with self._lock:
            self._records.clear()

    # ---- faults
    def _take_fault(self, verb: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(verb):
                    fault.remaining -= 1
                    self._faults = [f for f in self._faults if f.remaining > 0]
                    return fault
        return None

    def _add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def fail_next(self, n: int = 1, status: int = 503, code: str | None = None, *, verb: str | None = None) -> None:
        """Answer the next ``n`` requests (of ``verb``, e.g. "insert") with an error.

        503 with code "SlowDown" is retried by the SDK; other codes surface as its typed
        errors (503 -> ``errors.ServiceUnavailable``, 500 -> ``InternalServerError``...).
        """
        default = {503: "ServiceUnavailable", 500: "InternalError", 409: "Conflict", 403: "AccessDenied"}
        self._add_fault(Fault("fail", n, verb, status, code or default.get(status, "InjectedError")))

    def drop_connections(self, n: int = 1, *, verb: str | None = None, after_apply: bool = False) -> None:
        """Hang up on the next ``n`` requests without answering; with ``after_apply`` the
        request takes effect first (only the answer is lost)."""
        self._add_fault(Fault("drop", n, verb, after_apply=after_apply))

    def truncate_responses(self, n: int = 1, *, verb: str | None = "select") -> None:
        """Cut the next ``n`` answers half way (at a frame boundary for selects)."""
        self._add_fault(Fault("truncate", n, verb))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # ---- direct access for tests
    def committed_rows(self, schema: str, table: str, bucket: str | None = None) -> pa.Table:
        """The committed rows of a table (with ``$row_id``), bypassing the protocol."""
        with self.db.lock:
            return self.db.committed.table((bucket or self.bucket, schema, table)).rows

    def _ensure_catalog(self) -> tuple[str, str, str]:
        key = (catalog.CATALOG_BUCKET, catalog.CATALOG_SCHEMA, catalog.CATALOG_TABLE)
        db = self.db
        with db.lock:
            db.buckets.add(key[0])
            db.read_only_buckets.add(key[0])
            if (key[0], key[1]) not in db.committed.schemas:
                db.write(0, state.create_schema, key[0], key[1], "")
            if key not in db.committed.tables:
                db.write(0, state.create_table, key, db.allocate_uid(), catalog.CATALOG_COLUMNS)
        return key

    def add_catalog_entries(self, entries) -> int:
        """Register file-system entries in the VAST Catalog (see ``catalog.catalog_row``);
        returns how many rows were added."""
        key = self._ensure_catalog()
        rows = catalog.catalog_table(entries)
        with self.db.lock:
            uid = self.db.committed.tables[key].uid
            row_ids = self.db.allocate_row_ids(uid, rows.num_rows)
            self.db.write(0, state.insert_rows, key, uid, rows.add_column(0, ROW_ID_FIELD, row_ids))
        return rows.num_rows

    def add_catalog_directory(self, root, prefix: str = "/") -> int:
        """Register every file and directory under a real ``root`` as if mounted at ``prefix``."""
        return self.add_catalog_entries(catalog.entries_from_directory(root, prefix))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Serve a fake VAST Database endpoint.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--bucket", action="append", help="bucket to create (repeatable)")
    parser.add_argument("--data-dir", help="persist committed state in this directory")
    parser.add_argument("--access-key", default=DEFAULT_ACCESS_KEY)
    parser.add_argument("--secret-key", default=DEFAULT_SECRET_KEY)
    args = parser.parse_args(argv)
    server = FakeVastServer(args.bucket or ("cosmoscope",), host=args.host, port=args.port,
                            data_dir=args.data_dir, access_key=args.access_key, secret_key=args.secret_key)
    server.start()
    print(f"fake VAST Database at {server.endpoint} (bucket {server.bucket})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
