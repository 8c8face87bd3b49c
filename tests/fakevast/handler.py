"""The HTTP side of the fake VAST server: one handler per request.

Routing follows the SDK's URLs, ``/{bucket}/{schema}/{table}?{verb}``: the verb (``schema``,
``table``, ``column``, ``stats``, ``rows``, ``data``, ``transaction``) and the HTTP method
select the operation, ``tabular-txid`` the transaction. Errors travel as S3 XML bodies, so
the SDK raises its own typed errors.
"""

from __future__ import annotations

import logging
import socket
import time
import traceback
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

import pyarrow as pa
import pyarrow.compute as pc

from . import query, state, wire
from .state import ROW_ID, ROW_ID_FIELD, VastError, bad_request

if TYPE_CHECKING:
    from .server import FakeVastServer

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 5 * 2**20

# (HTTP method, query verb) -> the name used in the request log and fault filters.
VERBS = {
    ("POST", "transaction"): "begin", ("PUT", "transaction"): "commit",
    ("DELETE", "transaction"): "rollback", ("GET", "transaction"): "get_transaction",
    ("HEAD", ""): "head_bucket", ("GET", ""): "list_objects",
    ("POST", "schema"): "create_schema", ("GET", "schema"): "list_schemas",
    ("PUT", "schema"): "alter_schema", ("DELETE", "schema"): "drop_schema",
    ("POST", "table"): "create_table", ("GET", "table"): "list_tables",
    ("PUT", "table"): "alter_table", ("DELETE", "table"): "drop_table",
    ("GET", "column"): "list_columns", ("POST", "column"): "add_columns",
    ("PUT", "column"): "alter_column", ("DELETE", "column"): "drop_columns",
    ("GET", "sorted-columns"): "list_sorted_columns", ("GET", "stats"): "get_stats",
    ("POST", "rows"): "insert", ("PUT", "rows"): "update", ("DELETE", "rows"): "delete",
    ("GET", "data"): "select", ("POST", "data"): "import",
}


@dataclass
class RequestRecord:
    """One request as the fake saw it."""

    method: str
    verb: str
    path: str
    bucket: str
    schema: str
    table: str
    txid: int
    status: int
    request_bytes: int
    response_bytes: int
    fault: str | None = None
    error_code: str | None = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "HTTPServer"

    # ---- plumbing
    def version_string(self) -> str:
        return self.server.fake.server_header

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        log.debug("%s - %s", self.address_string(), format % args)

    def setup(self):
        super().setup()
        # Without this, Nagle's algorithm and delayed ACKs add ~40 ms to every request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.fake._connections.add(self.connection)

    def finish(self):
        self.server.fake._connections.discard(self.connection)
        super().finish()

    def do_GET(self):
        self._handle()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes | list[bytes] = b"", headers: dict | None = None,
              truncate: bool = False) -> int:
        frames = body if isinstance(body, list) else [body]
        total = sum(len(f) for f in frames)
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(total))
        self.send_header("x-amz-request-id", self.request_id)
        self.end_headers()
        if self.command == "HEAD":
            return 0
        if truncate:
            # Stop at a frame boundary half way through, then hang up: a dropped link.
            frames = frames[: max(1, len(frames) // 2)] if len(frames) > 1 else [frames[0][: len(frames[0]) // 2]]
            self.close_connection = True
        for frame in frames:
            self.wfile.write(frame)
        return total

    # ---- one request
    def _handle(self):
        fake = self.server.fake
        self.request_id = uuid.uuid4().hex[:16].upper()
        body = self._read_body()
        url = urlsplit(self.path)
        parts = url.query.split("&") if url.query else []
        verb_word = next((p for p in parts if p and "=" not in p), "")
        params = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        segments = [unquote(s) for s in url.path.split("/") if s]
        verb = VERBS.get((self.command, verb_word), f"{self.command} ?{verb_word}")
        if verb == "get_transaction" and self.headers.get("tabular-get-vast-version"):
            verb = "version"
        record = RequestRecord(self.command, verb, self.path, segments[0] if segments else "",
                               "", "", int(self.headers.get("tabular-txid") or 0), 0, len(body), 0)
        fault = None
        try:
            if fake.latency:
                time.sleep(fake.latency)
            if fake.verify_signatures:
                wire.verify_sigv4(self.command, self.path, self.headers, body, fake.credentials)
            if len(body) > MAX_REQUEST_BYTES:
                raise VastError(400, "EntityTooLarge", f"request body of {len(body)} bytes exceeds 5 MiB")
            fault = fake._take_fault(verb)
            if fault is not None and fault.kind == "fail":
                record.fault = "fail"
                raise VastError(fault.status, fault.code, f"injected failure of {verb}")
            if fault is not None and fault.kind == "drop" and not fault.after_apply:
                record.fault = "drop"
                self.close_connection = True
                return
            status, payload, headers = self._dispatch(verb, verb_word, segments, params, body, record)
            if fault is not None and fault.kind == "drop":
                record.fault = "drop-after-apply"
                self.close_connection = True
                return
            truncate = fault is not None and fault.kind == "truncate"
            record.fault = "truncate" if truncate else None
            record.status = status
            record.response_bytes = self._send(status, payload, headers, truncate=truncate)
        except VastError as err:
            record.status, record.error_code = err.status, err.code
            xml = b"" if self.command == "HEAD" else wire.error_xml(err, url.path, self.request_id)
            record.response_bytes = self._send(err.status, xml, {"Content-Type": "application/xml"})
        except Exception as exc:  # a bug in the fake: answer 500 and keep the traceback
            fake.internal_errors.append(traceback.format_exc())
            log.exception("fake VAST server failed on %s %s", self.command, self.path)
            err = VastError(500, "InternalError", f"fake server bug: {exc!r}")
            record.status, record.error_code = 500, err.code
            self._send(500, wire.error_xml(err, url.path, self.request_id))
        finally:
            if record.status == 0 and record.fault:
                record.status = -1
            fake._log(record)

    def _dispatch(self, verb, verb_word, segments, params, body, record):
        fake = self.server.fake
        db = fake.db
        txid = record.txid
        if verb_word == "transaction":
            return self._transaction(verb, txid)
        if not segments:
            raise VastError(400, "InvalidRequest", f"{verb} needs a bucket in the path")
        if "sub-table" in params:
            raise query.not_implemented("the imported-objects sub-table is not supported by the fake")
        bucket = segments[0]
        writing = self.command != "GET" and self.command != "HEAD"
        db.check_bucket(bucket, writing=writing)
        if verb_word == "":
            if self.command == "HEAD":
                return 200, b"", {}
            return 200, wire.list_bucket_xml(bucket), {"Content-Type": "application/xml"}
        if verb_word == "schema":
            record.schema = "/".join(segments[1:])
            return self._schema(verb, bucket, record.schema, params, txid)
        if verb_word == "table" and self.command == "GET":
            record.schema = "/".join(segments[1:])
            return self._list_tables(bucket, record.schema, txid)
        if len(segments) < 3:
            raise VastError(400, "InvalidRequest", f"{verb} needs /bucket/schema/table in the path")
        key = (bucket, "/".join(segments[1:-1]), segments[-1])
        record.schema, record.table = key[1], key[2]
        handler = getattr(self, "_" + verb, None)
        if handler is None:
            raise query.not_implemented(f"{verb} is not supported by the fake VAST server")
        return handler(key, params, body, txid)

    # ---- transactions
    def _transaction(self, verb, txid):
        db = self.server.fake.db
        if verb == "version":
            return 200, b"", {}
        if verb == "begin":
            new = db.begin()
            return 200, b"", {"tabular-txid": str(new), "x-vast-rcf-id": "E1:fakevast"}
        if verb == "commit":
            db.commit(txid)
        elif verb == "rollback":
            db.rollback(txid)
        else:
            db.view(txid)  # raises for an unknown transaction
        return 200, b"", {}

    # ---- schemas
    def _schema(self, verb, bucket, name, params, txid):
        db = self.server.fake.db
        if verb == "list_schemas":
            with db.lock:  # the transaction's own writes may be replacing entries meanwhile
                view = db.view(txid)
                if name and (bucket, name) not in view.schemas:
                    raise state.not_found("NoSuchSchema", f"schema {bucket}/{name} does not exist")
                cut = len(name) + 1 if name else 0
                children = {s[cut:]: p for (b, s), p in view.schemas.items()
                            if b == bucket and (s.startswith(name + "/") if name else True)
                            and "/" not in s[cut:]}
            names = self._filter_names(children)
            items, next_key, truncated = self._page(names)
            return 200, wire.list_schemas_response(bucket, [(n, children[n]) for n in items]), \
                self._list_headers(next_key, truncated, len(names))
        if not name:
            raise bad_request("a schema name is required")
        if verb == "create_schema":
            db.write(txid, state.create_schema, bucket, name, "")
        elif verb == "drop_schema":
            db.write(txid, state.drop_schema, bucket, name)
        elif verb == "alter_schema":
            new_name = params.get("tabular-new-schema-name")
            if new_name:
                db.write(txid, state.rename_schema, bucket, name, new_name)
        return 200, b"", {}

    def _filter_names(self, names) -> list[str]:
        exact = self.headers.get("tabular-name-exact-match")
        if exact is not None:
            return state.sorted_names(names, exact, exact=True)
        return state.sorted_names(names, self.headers.get("tabular-name-prefix", ""))

    def _page(self, names):
        next_key = int(self.headers.get("tabular-next-key") or 0)
        max_keys = int(self.headers.get("tabular-max-keys") or 1000)
        return state.page(names, next_key, max_keys)

    def _list_headers(self, next_key, truncated, count):
        return {"tabular-next-key": str(next_key), "tabular-is-truncated": "true" if truncated else "false",
                "tabular-list-count": str(count)}

    def _list_tables(self, bucket, schema, txid):
        db = self.server.fake.db
        with db.lock:
            view = db.view(txid)
            view.require_schema(bucket, schema)
            tables = {t: d for (b, s, t), d in view.tables.items() if b == bucket and s == schema}
        names = self._filter_names(tables)
        items, next_key, truncated = self._page(names)
        return 200, wire.list_tables_response(bucket, schema, [(n, tables[n]) for n in items]), \
            self._list_headers(next_key, truncated, len(names))

    # ---- tables
    def _table(self, key, txid) -> state.TableData:
        with self.server.fake.db.lock:
            return self.server.fake.db.view(txid).table(key)

    def _create_table(self, key, params, body, txid):
        if any(h.lower().startswith("tabular-sorted-column-") for h in self.headers.keys()):
            raise query.not_implemented("sorted (Elysium) tables are not supported by the fake")
        if any(h.lower().startswith("tabular-vector-index") for h in self.headers.keys()):
            raise query.not_implemented("vector indexes are not supported by the fake")
        if self.headers.get("use-external-row-ids-alloc"):
            raise query.not_implemented("external row id allocation is not supported by the fake")
        schema = pa.ipc.read_schema(pa.py_buffer(body))
        if any(k.startswith(b"VAST:table:partition-key") for k in (schema.metadata or {})):
            raise query.not_implemented("partitioned tables are not supported by the fake")
        state.check_storable(schema)
        db = self.server.fake.db
        db.write(txid, state.create_table, key, db.allocate_uid(), schema)
        return 200, b"", {}

    def _drop_table(self, key, params, body, txid):
        uid = self._table(key, txid).uid
        self.server.fake.db.write(txid, state.drop_table, key, uid, alters=uid)
        return 200, b"", {}

    def _alter_table(self, key, params, body, txid):
        if any(h.lower().startswith("tabular-sorted-column-") for h in self.headers.keys()):
            raise query.not_implemented("sorting keys are not supported by the fake")
        new_name = params.get("tabular-new-table-name")
        if new_name:
            uid = self._table(key, txid).uid
            self.server.fake.db.write(txid, state.rename_table, key, uid, new_name.rsplit("/", 1)[-1], alters=uid)
        return 200, b"", {}

    def _get_stats(self, key, params, body, txid):
        return 200, wire.table_stats_response(self._table(key, txid), self.server.fake.host), {}

    # ---- columns
    def _list_columns(self, key, params, body, txid):
        data = self._table(key, txid)
        exact = self.headers.get("tabular-name-exact-match")
        prefix = self.headers.get("tabular-name-prefix", "")
        fields = [f for f in data.schema  # in the table's column order
                  if (f.name == exact if exact is not None else f.name.startswith(prefix))]
        items, next_key, truncated = self._page(fields)
        # A 5.5 server tags every column with its sort type; the SDK reads the tag.
        schema = pa.schema([_with_sort_type(f) for f in items], metadata=data.schema.metadata)
        return 200, wire.schema_stream(schema), self._list_headers(next_key, truncated, len(fields))

    def _list_sorted_columns(self, key, params, body, txid):
        self._table(key, txid)
        raise bad_request("Listing sorted columns of a table without elysium enabled")

    def _add_columns(self, key, params, body, txid):
        new = pa.ipc.read_schema(pa.py_buffer(body))
        state.check_storable(new)
        uid = self._table(key, txid).uid
        self.server.fake.db.write(txid, state.add_columns, key, uid, list(new), alters=uid)
        return 200, b"", {}

    def _drop_columns(self, key, params, body, txid):
        names = pa.ipc.read_schema(pa.py_buffer(body)).names
        uid = self._table(key, txid).uid
        self.server.fake.db.write(txid, state.drop_columns, key, uid, names, alters=uid)
        return 200, b"", {}

    def _alter_column(self, key, params, body, txid):
        name, new_name = params.get("tabular-column-name"), params.get("tabular-new-column-name")
        if name and new_name:
            uid = self._table(key, txid).uid
            self.server.fake.db.write(txid, state.rename_column, key, uid, name, new_name, alters=uid)
        return 200, b"", {}

    # ---- rows
    def _read_rows(self, body) -> pa.Table:
        try:
            return pa.ipc.open_stream(pa.py_buffer(body)).read_all()
        except pa.ArrowInvalid as err:
            raise bad_request(f"request body is not an Arrow IPC stream: {err}")

    def _check_columns(self, data: state.TableData, rows: pa.Table, key) -> None:
        """Refuse what VAST refuses: unknown columns, types that differ from the table's,
        cells larger than the server's limit."""
        types = {f.name: f.type for f in data.schema}
        nullable = {f.name: f.nullable for f in data.schema}
        for field in rows.schema:
            if field.name == ROW_ID:
                continue
            expected = types.get(field.name)
            if expected is None:
                raise bad_request(f"column {field.name!r} does not exist in table {'/'.join(key)}")
            # Measured on VAST: a vector (fixed-size list) column also refuses a batch field
            # whose nullability differs from the column's.
            vector_nullability = (pa.types.is_fixed_size_list(expected)
                                  and field.nullable != nullable[field.name])
            if not field.type.equals(expected) or vector_nullability:
                raise bad_request(f"column {field.name!r} has type {field.type} but the table "
                                  f"{'/'.join(key)} stores {expected}: cast the data to the table schema",
                                  code="TabularMismatchColumnType")
            limit = self.server.fake.max_cell_bytes
            if limit and (pa.types.is_string(field.type) or pa.types.is_binary(field.type)) and rows.num_rows:
                longest = pc.max(pc.binary_length(rows[field.name])).as_py() or 0
                if longest > limit:
                    raise bad_request(f"a cell of column {field.name!r} holds {longest} bytes; "
                                      f"the limit is {limit}", code="TabularCellTooLarge")

    def _insert(self, key, params, body, txid):
        rows = self._read_rows(body)
        data = self._table(key, txid)
        if ROW_ID in rows.column_names:
            raise bad_request(f"an insert must not carry {ROW_ID!r}: row ids are allocated by the server")
        self._check_columns(data, rows, key)
        db = self.server.fake.db
        row_ids = db.allocate_row_ids(data.uid, rows.num_rows)
        db.write(txid, state.insert_rows, key, data.uid, rows.add_column(0, ROW_ID_FIELD, row_ids))
        ids = pa.record_batch([row_ids], schema=pa.schema([ROW_ID_FIELD]))
        return 200, wire.batch_stream(ids), {"Content-Type": "application/octet-stream"}

    def _row_ids(self, rows: pa.Table) -> pa.ChunkedArray:
        if rows.num_columns == 0 or rows.column_names[0] != ROW_ID:
            raise bad_request(f"the first column must be {ROW_ID!r}")
        if not rows.schema.field(0).type.equals(pa.uint64()):
            raise bad_request(f"{ROW_ID!r} must be uint64, not {rows.schema.field(0).type}")
        return rows[ROW_ID]

    def _update(self, key, params, body, txid):
        rows = self._read_rows(body)
        self._row_ids(rows)
        data = self._table(key, txid)
        self._check_columns(data, rows, key)
        self.server.fake.db.write(txid, state.update_rows, key, data.uid, rows)
        return 200, b"", {}

    def _delete(self, key, params, body, txid):
        row_ids = self._row_ids(self._read_rows(body)).combine_chunks()
        data = self._table(key, txid)
        self.server.fake.db.write(txid, state.delete_rows, key, data.uid, row_ids)
        return 200, b"", {}

    def _select(self, key, params, body, txid):
        if params.get("name"):
            raise query.not_implemented("semi-sorted projections are not supported by the fake")
        data = self._table(key, txid)
        frames = query.run_query(data, body, self.headers, self.server.fake.rows_per_row_group)
        return 200, frames, {"Content-Type": "application/octet-stream"}


def _with_sort_type(field: pa.Field) -> pa.Field:
    return field.with_metadata({**(field.metadata or {}), b"VAST:sort_type": b"Unsorted"})


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: "FakeVastServer"
