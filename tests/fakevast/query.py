"""QueryData: read the SDK's flatbuffers request, filter rows, frame the Arrow response.

The request is a computeir ``Relation`` whose ``Source`` names the queried columns (an
Arrow flatbuffers schema), a filter expression and the projected leaf positions. Column
positions count every node of the schema depth-first, inner nodes included. The response
carries, per sub-split, one Arrow IPC stream framed as ``[u32 stream id][u64 next row
id][IPC message]``; a sub-split is finished when its next row id is ``2**48 - 1``, and the
whole response ends with stream id ``0xFFFFFFFE``.
"""

from __future__ import annotations

import importlib
import struct
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import zip_longest

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .state import ROW_ID, TableData, VastError, bad_request

INVALID_ROW_ID = (1 << 48) - 1
COMPLETED_STREAM_ID = 0xFFFFFFFE
IPC_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"

_FB = "vastdb.vast_flatbuf.org.apache.arrow"


def _fb(name: str, package: str = "computeir.flatbuf"):
    module = importlib.import_module(f"{_FB}.{package}.{name}")
    return getattr(module, name)


def _cast(table, cls):
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    return obj


def not_implemented(message: str) -> VastError:
    return VastError(501, "NotImplemented", message)


@dataclass
class Node:
    """A node of the queried schema: a top-level column or one of its nested children."""

    index: int
    column: str                      # top-level column name
    type: pa.DataType
    path: tuple[int, ...] = ()       # child positions from the top-level column down
    children: list["Node"] = field(default_factory=list)


def _children_types(t: pa.DataType) -> list[pa.DataType]:
    if pa.types.is_struct(t):
        return [f.type for f in t]
    if pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
        return [t.value_type]
    if pa.types.is_map(t):
        return [pa.struct([t.key_field, t.item_field])]  # VAST sends a map as list<struct<k, v>>
    return []


def _enumerate(column: str, t: pa.DataType, counter: list[int], path: tuple[int, ...], out: dict) -> Node:
    node = Node(counter[0], column, t, path)
    counter[0] += 1
    out[node.index] = node
    node.children = [_enumerate(column, ct, counter, path + (i,), out)
                     for i, ct in enumerate(_children_types(t))]
    return node


def _leaves(node: Node) -> list[Node]:
    return [node] if not node.children else [leaf for c in node.children for leaf in _leaves(c)]


@dataclass
class QueryPlan:
    columns: list[str]               # queried top-level columns (projection + predicate)
    nodes: dict[int, Node]
    projection: list[Node]           # projected leaves, in request order
    filter: object | None            # computeir Expression, or None


def parse_request(body: bytes, data: TableData) -> QueryPlan:
    relation = _fb("Relation").GetRootAs(body, 0)
    source = _cast(relation.Impl(), _fb("Source"))
    fb_schema = source.Schema()
    types = {f.name: f.type for f in data.schema}
    types[ROW_ID] = pa.uint64()
    columns, nodes, counter = [], {}, [0]
    for j in range(fb_schema.FieldsLength() if fb_schema is not None else 0):
        name = fb_schema.Fields(j).Name().decode()
        if name not in types:
            raise bad_request(f"column {name!r} does not exist in the table")
        columns.append(name)
        _enumerate(name, types[name], counter, (), nodes)
    projection = []
    for j in range(source.ProjectionLength()):
        position = source.Projection(j).Position()
        node = nodes.get(position)
        if node is None or node.children:
            raise bad_request(f"projection position {position} is not a leaf column")
        projection.append(node)
    return QueryPlan(columns, nodes, projection, source.Filter())


# ---- predicate evaluation -------------------------------------------------------------

_LITERALS = {
    1: "BooleanLiteral", 2: "Int8Literal", 3: "Int16Literal", 4: "Int32Literal", 5: "Int64Literal",
    6: "UInt8Literal", 7: "UInt16Literal", 8: "UInt32Literal", 9: "UInt64Literal",
    10: "DateLiteral", 11: "TimeLiteral", 12: "TimestampLiteral", 15: "DecimalLiteral",
    16: "Float16Literal", 17: "Float32Literal", 18: "Float64Literal",
    22: "StringLiteral", 23: "BinaryLiteral",
}
_COMPARISONS = {
    "equal": pc.equal, "not_equal": pc.not_equal, "greater": pc.greater,
    "greater_equal": pc.greater_equal, "less": pc.less, "less_equal": pc.less_equal,
}
_EXPR_LITERAL, _EXPR_FIELD_REF, _EXPR_CALL = 1, 2, 3
_DEREF_FIELD_INDEX = 5


def _literal_value(expr) -> object:
    if expr.ImplType() != _EXPR_LITERAL:
        raise not_implemented("only column-versus-literal comparisons are supported")
    literal = _cast(expr.Impl(), _fb("Literal"))
    kind = literal.ImplType()
    if kind not in _LITERALS:
        raise not_implemented(f"literal kind {kind} is not supported by the fake")
    impl = _cast(literal.Impl(), _fb(_LITERALS[kind]))
    if kind == 23:
        raw = impl.ValueAsNumpy()
        return b"" if isinstance(raw, int) else raw.tobytes()
    if kind == 15:
        return int.from_bytes(impl.ValueAsNumpy().tobytes(), "little", signed=True)
    if kind == 16:
        return float(np.uint16(impl.Value()).view(np.float16))
    return impl.Value()


def _scalar(value, t: pa.DataType) -> pa.Scalar:
    """The literal as a scalar comparable with a column of type ``t``."""
    try:
        if pa.types.is_string(t) or pa.types.is_binary(t):
            return pa.scalar(value if isinstance(value, bytes) else bytes(value), pa.binary())
        if pa.types.is_decimal(t):
            return pa.scalar(Decimal(value).scaleb(-t.scale), t)
        if pa.types.is_date32(t) or pa.types.is_time32(t):
            return pa.array([value], pa.int32()).cast(t)[0]
        if pa.types.is_timestamp(t) or pa.types.is_time64(t):
            return pa.array([value], pa.int64()).cast(t)[0]
        return pa.scalar(value, t)
    except (pa.ArrowInvalid, OverflowError, TypeError) as err:
        raise bad_request(f"literal {value!r} does not fit column type {t}: {err}")


class _Evaluator:
    def __init__(self, plan: QueryPlan, rows: pa.Table):
        self.plan = plan
        self.rows = rows

    def column(self, expr) -> pa.ChunkedArray:
        return self.rows[self.column_name(expr)]

    def column_name(self, expr) -> str:
        if expr.ImplType() != _EXPR_FIELD_REF:
            raise not_implemented("the first argument of a comparison must be a column")
        ref = _cast(expr.Impl(), _fb("FieldRef"))
        if ref.RefType() != _DEREF_FIELD_INDEX:
            raise not_implemented("only field-index references are supported")
        position = _cast(ref.Ref(), _fb("FieldIndex")).Position()
        node = self.plan.nodes.get(position)
        if node is None:
            raise bad_request(f"predicate refers to unknown column position {position}")
        if node.path:
            raise not_implemented("predicates on nested fields are not supported by the fake")
        return node.column

    def isin(self, args) -> pa.ChunkedArray | None:
        """``isin`` arrives as an OR of equalities on one column: test them as one set
        (a 10,000-value list would otherwise mean 10,000 passes over the rows)."""
        name, values = None, []
        for arg in args:
            call = _cast(arg.Impl(), _fb("Call")) if arg.ImplType() == _EXPR_CALL else None
            if call is None or call.Name() != b"equal" or call.ArgumentsLength() != 2:
                return None
            if name not in (None, self.column_name(call.Arguments(0))):
                return None
            name = self.column_name(call.Arguments(0))
            values.append(_scalar(_literal_value(call.Arguments(1)), self.rows.schema.field(name).type))
        column = self.rows[name]
        if pa.types.is_string(column.type):
            column = column.cast(pa.binary())
        value_set = pa.array([v.as_py() for v in values], type=values[0].type)
        return pc.if_else(pc.is_null(column), pa.scalar(None, pa.bool_()), pc.is_in(column, value_set=value_set))

    def __call__(self, expr) -> pa.ChunkedArray:
        if expr.ImplType() != _EXPR_CALL:
            raise bad_request("a predicate node must be a function call")
        call = _cast(expr.Impl(), _fb("Call"))
        name = call.Name().decode()
        args = [call.Arguments(j) for j in range(call.ArgumentsLength())]
        if name in ("and", "or"):
            if not args:  # the SDK sends an empty "and" when there is no predicate
                return pa.chunked_array([pa.repeat(pa.scalar(name == "and"), self.rows.num_rows)])
            if name == "or" and len(args) > 8 and (found := self.isin(args)) is not None:
                return found
            combine = pc.and_kleene if name == "and" else pc.or_kleene
            result = self(args[0])
            for arg in args[1:]:
                result = combine(result, self(arg))
            return result
        if name in ("is_null", "is_valid"):
            column = self.column(args[0])
            return pc.is_null(column) if name == "is_null" else pc.is_valid(column)
        if name in _COMPARISONS and len(args) == 2:
            column = self.column(args[0])
            value = _scalar(_literal_value(args[1]), column.type)
            if pa.types.is_string(column.type):
                column = column.cast(pa.binary())  # byte order; startswith bounds may not be UTF-8
            return _COMPARISONS[name](column, value)
        if name == "match_substring" and len(args) == 2:
            column = self.column(args[0])
            pattern = _literal_value(args[1])
            pattern = pattern.decode() if isinstance(pattern, bytes) else str(pattern)
            return pc.match_substring(column, pattern)
        raise not_implemented(f"predicate function {name!r} is not supported")


def evaluate(plan: QueryPlan, rows: pa.Table) -> np.ndarray:
    """Boolean numpy mask of the rows the request's filter keeps (SQL null = dropped)."""
    if plan.filter is None or rows.num_rows == 0:
        return np.ones(rows.num_rows, dtype=bool)
    mask = pc.fill_null(_Evaluator(plan, rows)(plan.filter), False)
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


# ---- response -------------------------------------------------------------------------

def _leaf_array(arr: pa.Array, path: tuple[int, ...]) -> pa.Array:
    """``arr`` reduced to the single leaf at ``path``: VAST sends one column per leaf,
    keeping every nesting level above it (a map travels as list<struct<k, v>>)."""
    if not path:
        return arr
    t = arr.type
    mask = arr.is_null() if arr.null_count else None
    head, rest = path[0], path[1:]
    if pa.types.is_struct(t):
        child = _leaf_array(arr.field(head), rest)
        return pa.StructArray.from_arrays([child], fields=[t.field(head).with_type(child.type)], mask=mask)
    if pa.types.is_map(t):
        entries = pa.StructArray.from_arrays([arr.keys, arr.items], fields=[t.key_field, t.item_field])
        return pa.ListArray.from_arrays(arr.offsets, _leaf_array(entries, rest), mask=mask)
    if pa.types.is_list(t):
        return pa.ListArray.from_arrays(arr.offsets, _leaf_array(arr.values, rest), mask=mask)
    if pa.types.is_fixed_size_list(t):
        return pa.FixedSizeListArray.from_arrays(_leaf_array(arr.values, rest), t.list_size, mask=mask)
    raise bad_request(f"type {t} has no child {head}")


def _page_batch(plan: QueryPlan, page: "pa.Table | _Taken") -> pa.RecordBatch:
    if not plan.projection:
        # No columns, but the row count still travels (``select(columns=[])``).
        empty = pa.Array.from_buffers(pa.struct([]), page.num_rows, [None], children=[])
        return pa.RecordBatch.from_struct_array(empty)
    arrays, fields = [], []
    for node in plan.projection:
        base = page[node.column].combine_chunks()
        if base.offset:
            base = pa.concat_arrays([base])  # the client rebuilds arrays from raw buffers
        leaf = _leaf_array(base, node.path)
        arrays.append(leaf)
        fields.append(pa.field(node.column, leaf.type))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


@dataclass
class Split:
    split_id: int
    num_splits: int
    row_groups_per_sub_split: int
    num_sub_splits: int
    start_row_ids: dict[int, int]
    limit_rows: int                  # 0: unlimited


def parse_split_headers(headers) -> Split:
    try:
        split_id, num_splits, groups = (int(x) for x in headers.get("tabular-split", "0,1,8").split(","))
        num_sub_splits = int(headers.get("tabular-num-of-subsplits", "1"))
        limit = int(headers.get("tabular-limit-rows", "0"))
        starts = {}
        for k in range(num_sub_splits):
            value = headers.get(f"tabular-start-row-id-{k}", f"{k},0")
            sub, start = (int(x) for x in value.split(","))
            starts[sub] = start
        schedule = headers.get("tabular-schedule-id")
        if schedule is not None and int(schedule) < 0:
            raise ValueError("negative queue priority")
    except ValueError as err:
        raise bad_request(f"malformed query headers: {err}")
    if not (0 <= split_id < num_splits) or num_sub_splits < 1 or groups < 1 or limit < 0:
        raise bad_request(f"invalid split {split_id}/{num_splits} ({groups} row groups, {num_sub_splits} sub-splits)")
    return Split(split_id, num_splits, groups, num_sub_splits, starts, limit)


class _Taken:
    """The rows at ``indices``, each column taken only when it is read: a filter or projection of
    two columns of a wide table costs two columns, not all of them."""

    def __init__(self, rows: pa.Table, indices: np.ndarray):
        self._rows, self._indices = rows, indices
        self.schema, self.num_rows = rows.schema, len(indices)

    def __getitem__(self, name: str) -> pa.ChunkedArray:
        return self._rows[name].take(self._indices)


def _matching(plan: QueryPlan, rows: pa.Table, candidates: np.ndarray, limit: int) -> np.ndarray:
    """Indices of candidate rows the filter keeps; with a limit, stop once more than
    ``limit`` are found (so a small page of a big table stays cheap)."""
    step = max(65_536, 2 * limit) if limit else max(len(candidates), 1)
    found, count = [], 0
    for start in range(0, len(candidates), step):
        chunk = candidates[start:start + step]
        hits = chunk[evaluate(plan, _Taken(rows, chunk))]
        found.append(hits)
        count += len(hits)
        if limit and count > limit:
            break
    return np.concatenate(found) if found else candidates[:0]


def run_query(data: TableData, body: bytes, headers, rows_per_row_group: int) -> list[bytes]:
    """Answer one QueryData request; returns the response body as a list of frames."""
    plan = parse_request(body, data)
    split = parse_split_headers(headers)
    rows = data.readable
    row_ids = rows[ROW_ID].to_numpy()
    chunk = (row_ids // rows_per_row_group) // split.row_groups_per_sub_split
    in_split = (chunk % split.num_splits) == split.split_id
    sub_of = (chunk // split.num_splits) % split.num_sub_splits

    streams = []
    for sub, start in sorted(split.start_row_ids.items()):
        if start == INVALID_ROW_ID:
            continue  # this sub-split already finished in an earlier response
        candidates = np.nonzero(in_split & (sub_of == sub) & (row_ids >= start))[0]
        matched = _matching(plan, rows, candidates, split.limit_rows)
        next_row_id = INVALID_ROW_ID
        if split.limit_rows and len(matched) > split.limit_rows:
            matched = matched[:split.limit_rows]
            next_row_id = int(row_ids[matched[-1]]) + 1  # resume after the last row sent
        batch = _page_batch(plan, _Taken(rows, matched))
        prefix = struct.pack("<LQ", sub, next_row_id)
        streams.append([prefix + batch.schema.serialize().to_pybytes(),
                        prefix + batch.serialize().to_pybytes(),
                        prefix + IPC_EOS])
    # Interleave the sub-splits' messages, as the real server's concurrent fibers do.
    frames = [f for group in zip_longest(*streams) for f in group if f is not None]
    frames.append(struct.pack("<L", COMPLETED_STREAM_ID))
    return frames
