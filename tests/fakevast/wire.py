"""Bytes the fake sends and checks: S3 XML errors, flatbuffers listings, AWS SigV4.

The flatbuffers tables are built with the SDK's own generated modules
(``vastdb.vast_flatbuf.tabular``), so the client parses exactly what it expects.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from urllib.parse import quote, urlparse
from xml.sax.saxutils import escape

import flatbuffers
import pyarrow as pa

from .state import TableData, VastError

_TABULAR = "vastdb.vast_flatbuf.tabular"


def _module(name: str):
    import importlib

    return importlib.import_module(f"{_TABULAR}.{name}")


def error_xml(err: VastError, resource: str, request_id: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(err.code)}</Code><Message>{escape(err.message)}</Message>"
        f"<Resource>{escape(resource)}</Resource><RequestId>{request_id}</RequestId></Error>"
    ).encode()


def list_bucket_xml(bucket: str) -> bytes:
    """An empty S3 ListObjectsV2 answer: the fake keeps no snapshots."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>{escape(bucket)}</Name><Prefix></Prefix><Marker></Marker>"
        "<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>"
    ).encode()


def _object_details(builder, name: str, properties: str = "", data: TableData | None = None) -> int:
    od = _module("ObjectDetails")
    name_off = builder.CreateString(name)
    props_off = builder.CreateString(properties)
    handle_off = builder.CreateString(str(data.uid if data else 0))
    od.Start(builder)
    od.AddName(builder, name_off)
    od.AddProperties(builder, props_off)
    od.AddHandle(builder, handle_off)
    if data is not None:
        od.AddNumRows(builder, data.num_rows)
        od.AddSizeInBytes(builder, data.rows.nbytes)
    return od.End(builder)


def _vector(builder, start, offsets: list[int]) -> int:
    start(builder, len(offsets))
    for off in reversed(offsets):
        builder.PrependUOffsetTRelative(off)
    return builder.EndVector()


def list_schemas_response(bucket: str, schemas: list[tuple[str, str]]) -> bytes:
    mod = _module("ListSchemasResponse")
    builder = flatbuffers.Builder(1024)
    details = [_object_details(builder, name, props) for name, props in schemas]
    bucket_off = builder.CreateString(bucket)
    vec = _vector(builder, mod.StartSchemasVector, details)
    mod.Start(builder)
    mod.AddBucketName(builder, bucket_off)
    mod.AddSchemas(builder, vec)
    builder.Finish(mod.End(builder))
    return bytes(builder.Output())


def list_tables_response(bucket: str, schema: str, tables: list[tuple[str, TableData]]) -> bytes:
    mod = _module("ListTablesResponse")
    builder = flatbuffers.Builder(1024)
    details = [_object_details(builder, name, data.properties, data) for name, data in tables]
    bucket_off = builder.CreateString(bucket)
    schema_off = builder.CreateString(schema)
    vec = _vector(builder, mod.StartTablesVector, details)
    mod.Start(builder)
    mod.AddBucketName(builder, bucket_off)
    mod.AddSchemaName(builder, schema_off)
    mod.AddTables(builder, vec)
    builder.Finish(mod.End(builder))
    return bytes(builder.Output())


def table_stats_response(data: TableData, vip: str) -> bytes:
    """Row count, size and one VIP (the fake itself), so endpoint discovery finds it."""
    mod = _module("GetTableStatsResponse")
    vip_mod = _module("VipRange")
    builder = flatbuffers.Builder(1024)
    addr = builder.CreateString(vip)
    vip_mod.Start(builder)
    vip_mod.AddStartAddress(builder, addr)
    vip_mod.AddAddressCount(builder, 1)
    vips = _vector(builder, mod.StartVipsVector, [vip_mod.End(builder)])
    mod.Start(builder)
    mod.AddNumRows(builder, data.num_rows)
    mod.AddSizeInBytes(builder, data.rows.nbytes)
    mod.AddIsExternalRowidAlloc(builder, False)
    mod.AddVips(builder, vips)
    builder.Finish(mod.End(builder))
    return bytes(builder.Output())


def schema_stream(schema: pa.Schema) -> bytes:
    """An Arrow IPC stream holding only ``schema`` (the column listing format)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema):
        pass
    return sink.getvalue().to_pybytes()


def batch_stream(table: pa.Table | pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write(table)
    return sink.getvalue().to_pybytes()


# ---- AWS Signature Version 4, as signed by aws-requests-auth (the SDK's signer) ----------

MAX_CLOCK_SKEW = dt.timedelta(minutes=15)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _canonical_query(query: str) -> str:
    parts = []
    for param in sorted(query.split("&")):
        key, _, value = param.partition("=")
        if key:
            parts.append(f"{key}={value}")
    return "&".join(parts)


def verify_sigv4(method: str, raw_path: str, headers, body: bytes, credentials: dict[str, str]) -> None:
    """Raise a 403 VastError unless the request is signed with a known key pair."""
    auth = headers.get("Authorization")
    if not auth or not auth.startswith("AWS4-HMAC-SHA256 "):
        raise VastError(403, "AccessDenied", "request is not signed with AWS Signature Version 4")
    try:
        fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(","))
        access_key, date, region, service, terminal = fields["Credential"].split("/")
        signed_headers = fields["SignedHeaders"].split(";")
        signature = fields["Signature"]
    except (KeyError, ValueError):
        raise VastError(400, "AuthorizationHeaderMalformed", "the Authorization header is malformed")
    secret = credentials.get(access_key)
    if secret is None:
        raise VastError(403, "InvalidAccessKeyId",
                        "the access key ID you provided does not exist in our records")
    amz_date = headers.get("x-amz-date", "")
    try:
        when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise VastError(403, "AccessDenied", "x-amz-date is missing or malformed")
    if abs(dt.datetime.now(dt.timezone.utc) - when) > MAX_CLOCK_SKEW:
        raise VastError(403, "RequestTimeTooSkewed", "the request time is too far from the server time")
    payload_hash = hashlib.sha256(body).hexdigest()
    if headers.get("x-amz-content-sha256", payload_hash) != payload_hash:
        raise VastError(400, "XAmzContentSHA256Mismatch", "the body does not match x-amz-content-sha256")
    url = urlparse(raw_path)
    canonical_headers = "".join(f"{h}:{(headers.get(h) or '').strip()}\n" for h in signed_headers)
    canonical_request = "\n".join([
        method, quote(url.path or "/", safe="/-_.~"), _canonical_query(url.query),
        canonical_headers, ";".join(signed_headers), payload_hash,
    ])
    scope = f"{date}/{region}/{service}/{terminal}"
    string_to_sign = "\n".join([
        "AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest(),
    ])
    key = _hmac(("AWS4" + secret).encode(), date)
    for part in (region, service, terminal):
        key = _hmac(key, part)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise VastError(403, "SignatureDoesNotMatch",
                        "the request signature we calculated does not match the signature you provided")
