"""ADQL to polars: a query on ``ivoa.obscore`` or ``TAP_SCHEMA`` becomes a lazy frame of the
catalog, whose filters reach the store as every other search's do.

Three steps, kept apart as in DaCHS and Rubin's TAP service: sqlglot parses the ADQL (its
T-SQL reader knows ``TOP``; ADQL's geometry functions arrive as plain function calls), the tree
is checked against what this service answers (one table, no joins or subqueries, known columns
and functions, ICRS geometry), and each part becomes a polars expression. A top-level
``CONTAINS(POINT(s_ra, s_dec), CIRCLE|BOX|POLYGON) = 1``, ``INTERSECTS(s_region, ...) = 1`` or
``DISTANCE(POINT(s_ra, s_dec), POINT(ra, dec)) < r`` also narrows the scan to the
``sky_index`` ranges of that region (:mod:`cosmoscope.sky.index`), and the exact test follows
in polars. Nothing here writes: only a single SELECT is accepted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from cosmoscope.errors import CosmoscopeError

if TYPE_CHECKING:
    import polars as pl
    from sqlglot import exp


class AdqlError(CosmoscopeError):
    """A query this service cannot run, in one sentence (a VOTable error over TAP)."""


@dataclass
class Plan:
    """A parsed query: what to read, how to filter, what to return."""

    table: str                      # "ivoa.obscore" or "tap_schema.<name>"
    frame: pl.LazyFrame             # the query's rows, limited to ``limit``
    limit: int | None               # TOP, if any
    sky: list = field(default_factory=list)  # shapes narrowing the scan


_RAD = math.pi / 180.0


def parse(query: str) -> exp.Select:
    """The sqlglot tree of one ADQL SELECT; :class:`AdqlError` for anything else."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError, TokenError

    text = (query or "").strip().rstrip(";").strip()
    if not text:
        raise AdqlError("the query is empty; send QUERY=SELECT ... FROM ivoa.obscore")
    try:
        trees = sqlglot.parse(text, read="tsql")
    except (ParseError, TokenError) as exc:
        raise AdqlError(f"the ADQL could not be parsed: {_first_line(exc)}") from None
    trees = [t for t in trees if t is not None]
    if len(trees) != 1:
        raise AdqlError("send one query at a time")
    tree = trees[0]
    writes = (exp.Insert, exp.Update, exp.Delete, exp.Create, exp.Drop, exp.Alter, exp.Merge, exp.Command)
    if isinstance(tree, writes):
        raise AdqlError(f"this service is read-only: only SELECT queries are answered, not {tree.key.upper()}")
    if not isinstance(tree, exp.Select):
        raise AdqlError("the ADQL could not be parsed: expected SELECT ... FROM ivoa.obscore ...")
    return tree


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def plan(query: str, tables: Callable[[str, list], tuple[pl.LazyFrame, list[str]]], *, maxrec: int | None) -> Plan:
    """Translate ``query``. ``tables(name, sky_shapes)`` gives the lazy frame of a table (narrowed
    to the shapes' ``sky_index`` ranges where it can) and its column names, or raises
    :class:`AdqlError` for an unknown table. The frame is cut to ``min(TOP, maxrec + 1)`` rows, so
    the caller can tell an overflow."""
    from sqlglot import exp

    tree = parse(query)
    for key in ("joins", "laterals", "with", "pivots"):
        if tree.args.get(key):
            raise AdqlError("joins and sub-queries are not supported here; query one table at a time")
    if tree.args.get("having"):
        raise AdqlError("HAVING is not supported here; filter the grouped rows on your side")
    source = tree.args.get("from_") or tree.args.get("from")
    if source is None or not isinstance(source.this, exp.Table):
        raise AdqlError("the query needs FROM ivoa.obscore (or a TAP_SCHEMA table)")
    table = source.this
    name = ".".join(p.name.lower() for p in (table.args.get("catalog"), table.args.get("db"), table.this) if p)
    alias = table.alias.lower() if table.alias else None
    where = tree.args.get("where")
    shapes = [s for s in (_sky_conjunct(c) for c in _conjuncts(where.this)) if s is not None] if where else []
    frame, columns = tables(name, shapes)
    tx = _Translator(set(columns), {name, name.split(".")[-1]} | ({alias} if alias else set()))
    if where is not None:
        frame = frame.filter(tx.boolean(where.this))
    frame = _project(tree, frame, columns, tx)
    top = tree.args.get("limit")
    limit = None
    if top is not None:
        limit = _integer(top.expression, "TOP")
    offset = tree.args.get("offset")
    if offset is not None:
        frame = frame.slice(_integer(offset.expression, "OFFSET"))
    cut = min(x for x in (limit, None if maxrec is None else maxrec + 1) if x is not None) \
        if (limit is not None or maxrec is not None) else None
    if cut is not None:
        frame = frame.head(cut)
    return Plan(name, frame, limit, shapes)


def _integer(node, what: str) -> int:
    from sqlglot import exp

    if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
        return int(node.this)
    raise AdqlError(f"{what} takes a whole number, e.g. {what} 100")


def _conjuncts(node):
    from sqlglot import exp

    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        yield from _conjuncts(node.this)
        yield from _conjuncts(node.expression)
    else:
        yield node


# -- geometry ----------------------------------------------------------------------------------

def _fname(node) -> str:
    from sqlglot import exp

    if isinstance(node, exp.Anonymous):
        return node.name.upper()
    if isinstance(node, exp.Contains):
        return "CONTAINS"
    return type(node).__name__.upper()


def _fargs(node) -> list:
    from sqlglot import exp

    if isinstance(node, exp.Contains):
        return [node.this, node.expression]
    return list(node.expressions)


def _number(node) -> float:
    from sqlglot import exp

    sign = 1.0
    while isinstance(node, (exp.Neg, exp.Paren)):
        if isinstance(node, exp.Neg):
            sign = -sign
        node = node.this
    if isinstance(node, exp.Literal) and not node.is_string:
        return sign * float(node.this)
    raise AdqlError(f"geometry takes numbers here, not {node.sql('tsql')!r}")


def _frame_args(name: str, args: list) -> list:
    """Arguments after ADQL's optional coordinate-system text, which must mean ICRS."""
    from sqlglot import exp

    if args and isinstance(args[0], exp.Literal) and args[0].is_string:
        system = args[0].this.strip().upper()
        if system and not system.startswith("ICRS") and system not in ("J2000", "UNKNOWNFRAME"):
            raise AdqlError(f"{name} in {args[0].this!r}: this service has ICRS positions only; give 'ICRS'")
        return args[1:]
    return args


def shape_of(node, *, footprints: bool):
    """A CIRCLE, BOX or POLYGON of constants as a sky shape."""
    from cosmoscope.errors import InvalidArgumentError
    from cosmoscope.sky import Box, Cone, Polygon

    name = _fname(node)
    args = [_number(a) for a in _frame_args(name, _fargs(node))] if name in ("CIRCLE", "BOX", "POLYGON") else None
    try:
        if name == "CIRCLE" and len(args) == 3:
            return Cone(args[0], args[1], args[2], footprints)
        if name == "BOX" and len(args) == 4:
            return Box.around(args[0], args[1], args[2], args[3], footprints)
        if name == "POLYGON" and len(args) >= 6 and len(args) % 2 == 0:
            return Polygon(tuple(zip(args[0::2], args[1::2])), footprints)
    except InvalidArgumentError as exc:
        raise AdqlError(f"{name}: {exc}") from None
    if args is not None:
        raise AdqlError(f"{name} has the wrong number of arguments ({len(args)})")
    raise AdqlError(f"expected CIRCLE, BOX or POLYGON, not {node.sql('tsql')!r}")


def _point_columns(node) -> tuple[str, str] | None:
    """The two column names of ``POINT([frame,] col1, col2)``, else None."""
    from sqlglot import exp

    if _fname(node) != "POINT":
        return None
    args = _frame_args("POINT", _fargs(node))
    if len(args) == 2 and all(isinstance(a, exp.Column) for a in args):
        return args[0].name.lower(), args[1].name.lower()
    return None


def _is_one(node) -> bool:
    from sqlglot import exp

    return isinstance(node, exp.Literal) and not node.is_string and node.this in ("1", "1.0")


def _sky_conjunct(node):
    """The shape a top-level condition confines rows to, when it is a sky search on the
    standard columns; None otherwise."""
    from sqlglot import exp

    if isinstance(node, exp.EQ):
        call = node.this if _is_one(node.expression) else node.expression if _is_one(node.this) else None
        if call is None:
            return None
        name, args = _fname(call), _fargs(call) if _fname(call) in ("CONTAINS", "INTERSECTS") else []
        if name == "CONTAINS" and len(args) == 2 and _point_columns(args[0]) == ("s_ra", "s_dec"):
            return shape_of(args[1], footprints=False)
        if name == "INTERSECTS" and len(args) == 2:
            for region, other in ((args[0], args[1]), (args[1], args[0])):
                if isinstance(region, exp.Column) and region.name.lower() == "s_region":
                    return shape_of(other, footprints=True)
        return None
    if isinstance(node, (exp.LT, exp.LTE, exp.GT, exp.GTE)):
        left, right = node.this, node.expression
        if isinstance(node, (exp.GT, exp.GTE)):
            left, right = right, left
        if _fname(left) == "DISTANCE":
            centre = _distance_centre(left)
            if centre is not None:
                from cosmoscope.errors import InvalidArgumentError
                from cosmoscope.sky import Cone

                try:
                    radius = _number(right)
                except AdqlError:
                    return None
                if radius <= 0:
                    return None  # nothing is closer than 0: the exact test answers
                try:
                    return Cone(centre[0], centre[1], min(radius, 180.0), footprints=False)
                except InvalidArgumentError as exc:
                    raise AdqlError(f"DISTANCE: {exc}") from None
    return None


def _distance_centre(node) -> tuple[float, float] | None:
    args = _fargs(node)
    if len(args) == 2:
        for here, there in ((args[0], args[1]), (args[1], args[0])):
            if _point_columns(here) == ("s_ra", "s_dec") and _fname(there) == "POINT":
                vals = _frame_args("POINT", _fargs(there))
                try:
                    return _number(vals[0]), _number(vals[1])
                except (AdqlError, IndexError):
                    return None
    return None


# -- expressions ---------------------------------------------------------------------------------

_AGGREGATES = {"COUNT", "AVG", "MIN", "MAX", "SUM"}


class _Translator:
    """sqlglot expressions to polars expressions over one table's columns."""

    def __init__(self, columns: set[str], table_names: set[str]):
        self.columns, self.table_names = columns, table_names

    def column(self, node) -> pl.Expr:
        import polars as pl

        name = node.name if node.this.args.get("quoted") else node.name.lower()
        qualifier = node.table.lower() if node.table else None
        if qualifier and qualifier not in self.table_names:
            raise AdqlError(f"unknown table {node.table!r} in {node.sql('tsql')!r}")
        if name not in self.columns:
            import difflib

            close = difflib.get_close_matches(name, sorted(self.columns), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise AdqlError(f"unknown column {name!r}{hint}")
        return pl.col(name)

    def boolean(self, node) -> pl.Expr:
        return self.value(node)

    def value(self, node) -> pl.Expr:  # noqa: C901 - one dispatch over ADQL's node types
        import polars as pl
        from sqlglot import exp

        if isinstance(node, exp.Paren):
            return self.value(node.this)
        if isinstance(node, exp.Column):
            if isinstance(node.this, exp.Star):
                raise AdqlError("* is only allowed alone in the select list or in COUNT(*)")
            return self.column(node)
        if isinstance(node, exp.Literal):
            if node.is_string:
                return pl.lit(node.this, pl.String)
            text = node.this
            return pl.lit(int(text)) if text.lstrip("-").isdigit() else pl.lit(float(text))
        if isinstance(node, exp.Null):
            return pl.lit(None)
        if isinstance(node, exp.Boolean):
            return pl.lit(bool(node.this))
        binary = {exp.EQ: "__eq__", exp.NEQ: "__ne__", exp.LT: "__lt__", exp.LTE: "__le__", exp.GT: "__gt__",
                  exp.GTE: "__ge__", exp.Add: "__add__", exp.Sub: "__sub__", exp.Mul: "__mul__",
                  exp.Div: "__truediv__", exp.Mod: "__mod__", exp.And: "__and__", exp.Or: "__or__"}
        for kind, method in binary.items():
            if type(node) is kind:
                left, right = self.value(node.this), self.value(node.expression)
                if kind is exp.Div:
                    return _divide(left, right)
                return getattr(left, method)(right)
        if isinstance(node, exp.DPipe):
            return pl.concat_str([self.value(node.this), self.value(node.expression)])
        if isinstance(node, exp.Neg):
            return -self.value(node.this)
        if isinstance(node, exp.Not):
            return ~self.value(node.this)
        if isinstance(node, exp.Is):
            if not isinstance(node.expression, exp.Null):
                raise AdqlError("IS takes NULL or NOT NULL")
            return self.value(node.this).is_null()
        if isinstance(node, exp.Between):
            return self.value(node.this).is_between(self.value(node.args["low"]), self.value(node.args["high"]))
        if isinstance(node, exp.In):
            if node.args.get("query") is not None:
                raise AdqlError("sub-queries are not supported here")
            values = [self.value(v) for v in node.expressions]
            out = self.value(node.this) == values[0]
            for v in values[1:]:
                out = out | (self.value(node.this) == v)
            return out
        if isinstance(node, (exp.Like, exp.ILike)):
            pattern = node.expression
            if not (isinstance(pattern, exp.Literal) and pattern.is_string):
                raise AdqlError("LIKE takes a text pattern such as 'NGC%'")
            target = self.value(node.this)
            regex = _like_regex(pattern.this)
            if isinstance(node, exp.ILike):
                return target.str.contains("(?is)" + regex)
            return target.str.contains("(?s)" + regex)
        return self.function(node)

    def function(self, node) -> pl.Expr:  # noqa: C901
        import polars as pl
        from sqlglot import exp

        name = _fname(node)
        unary = {"ABS": "abs", "CEIL": "ceil", "FLOOR": "floor", "SQRT": "sqrt", "EXP": "exp", "SIN": "sin",
                 "COS": "cos", "TAN": "tan", "ASIN": "arcsin", "ACOS": "arccos", "ATAN": "arctan",
                 "DEGREES": "degrees", "RADIANS": "radians"}
        if name in unary:
            return getattr(self.value(node.this).cast(pl.Float64), unary[name])()
        if name == "LN":
            return self.value(node.this).cast(pl.Float64).log()
        if name == "LOG":  # LOG10(x) arrives as LOG(10, x)
            return self.value(node.expression).cast(pl.Float64).log(_number(node.this))
        if name == "POW":
            return self.value(node.this).cast(pl.Float64).pow(self.value(node.expression))
        if name == "ROUND":
            digits = int(_number(node.args["decimals"])) if node.args.get("decimals") else 0
            return self.value(node.this).round(digits)
        if name == "TRUNCATE":
            args = _fargs(node)
            scale = 10.0 ** (int(_number(args[1])) if len(args) > 1 else 0)
            x = self.value(args[0]).cast(pl.Float64) * scale
            return pl.when(x >= 0).then(x.floor()).otherwise(x.ceil()) / scale
        if name == "ATAN2":
            return pl.arctan2(self.value(node.this).cast(pl.Float64), self.value(node.expression).cast(pl.Float64))
        if name == "PI":
            return pl.lit(math.pi)
        if name in ("LOWER", "UPPER"):
            v = self.value(node.this)
            return v.str.to_lowercase() if name == "LOWER" else v.str.to_uppercase()
        if name == "COALESCE":
            return pl.coalesce([self.value(node.this), *[self.value(e) for e in node.expressions]])
        if name in _AGGREGATES:
            return self.aggregate(node, name)
        if name == "DISTANCE":
            return self.distance(node)
        if name in ("CONTAINS", "INTERSECTS"):
            return self.geometry(node, name)
        if name in ("POINT", "CIRCLE", "BOX", "POLYGON", "REGION", "AREA", "CENTROID", "COORD1", "COORD2",
                    "COORDSYS"):
            raise AdqlError(f"{name} is only supported inside CONTAINS, INTERSECTS and DISTANCE here")
        if isinstance(node, exp.Anonymous):
            raise AdqlError(f"unknown or unsupported function {name}")
        raise AdqlError(f"{node.sql('tsql')!r} is not supported here")

    def aggregate(self, node, name: str) -> pl.Expr:
        import polars as pl
        from sqlglot import exp

        arg = node.this
        if name == "COUNT":
            if isinstance(arg, exp.Star):
                return pl.len().cast(pl.Int64)
            if isinstance(arg, exp.Distinct):
                return self.value(arg.expressions[0]).drop_nulls().n_unique().cast(pl.Int64)
            return self.value(arg).count().cast(pl.Int64)
        if isinstance(arg, exp.Distinct):
            raise AdqlError(f"{name}(DISTINCT ...) is not supported here")
        v = self.value(arg)
        return {"AVG": v.mean(), "MIN": v.min(), "MAX": v.max(), "SUM": v.sum()}[name]

    def distance(self, node) -> pl.Expr:
        """DISTANCE(POINT, POINT) or DISTANCE(ra1, dec1, ra2, dec2), in degrees (haversine)."""
        import polars as pl

        args = _fargs(node)
        if len(args) == 2:
            pts = []
            for p in args:
                if _fname(p) != "POINT":
                    raise AdqlError("DISTANCE takes two POINTs")
                coords = _frame_args("POINT", _fargs(p))
                if len(coords) != 2:
                    raise AdqlError("POINT takes a longitude and a latitude")
                pts.append([self.value(c) for c in coords])
            (ra1, dec1), (ra2, dec2) = pts
        elif len(args) == 4:
            ra1, dec1, ra2, dec2 = (self.value(a) for a in args)
        else:
            raise AdqlError("DISTANCE takes two POINTs (or four numbers)")
        ra1, dec1, ra2, dec2 = (x.cast(pl.Float64) * _RAD for x in (ra1, dec1, ra2, dec2))
        h = ((dec2 - dec1) / 2).sin() ** 2 + dec1.cos() * dec2.cos() * ((ra2 - ra1) / 2).sin() ** 2
        return (2 * h.clip(0.0, 1.0).sqrt().arcsin()).degrees()

    def geometry(self, node, name: str) -> pl.Expr:
        """CONTAINS(POINT(cols), shape) and INTERSECTS(s_region, shape) as 1/0 integers."""
        import polars as pl
        from sqlglot import exp

        from cosmoscope.sky.search import OBSCORE_COLUMNS, Columns, exact_filter

        args = _fargs(node)
        if len(args) != 2:
            raise AdqlError(f"{name} takes two arguments")
        if name == "CONTAINS":
            cols = _point_columns(args[0])
            if cols is None:
                raise AdqlError("CONTAINS takes POINT('ICRS', ra_column, dec_column) and a CIRCLE, BOX or POLYGON")
            for c in cols:
                self.column(exp.column(c))
            shape = shape_of(args[1], footprints=False)
            test = exact_filter(shape, Columns(cols[0], cols[1], "s_fov", "s_region"))
        else:
            region, other = args
            if not (isinstance(region, exp.Column) and region.name.lower() == "s_region"):
                region, other = other, region
            if not (isinstance(region, exp.Column) and region.name.lower() == "s_region"):
                raise AdqlError("INTERSECTS takes s_region and a CIRCLE, BOX or POLYGON")
            shape = shape_of(other, footprints=True)
            test = exact_filter(shape, OBSCORE_COLUMNS)
        return test.cast(pl.Int32)


def _divide(left: pl.Expr, right: pl.Expr) -> pl.Expr:
    return left.cast(__import__("polars").Float64) / right


def _like_regex(pattern: str) -> str:
    """An SQL LIKE pattern (``%``, ``_``) as an anchored regular expression."""
    import re

    out = []
    for ch in pattern:
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return "^" + "".join(out) + "$"


def _contains_aggregate(node) -> bool:
    from sqlglot import exp

    return any(_fname(n) in _AGGREGATES for n in node.find_all(exp.Func)) if isinstance(node, exp.Expression) else False


def _output_name(node, i: int, used: set[str]) -> str:
    from sqlglot import exp

    if isinstance(node, exp.Alias):
        name = node.alias
    elif isinstance(node, exp.Column):
        name = node.name.lower()
    elif isinstance(node, exp.Func):
        name = _fname(node).lower()
    else:
        name = f"col{i}"
    base, k = name, 1
    while name in used:
        k += 1
        name = f"{base}_{k}"
    used.add(name)
    return name


def _project(tree, frame: pl.LazyFrame, columns: list[str], tx: _Translator) -> pl.LazyFrame:
    """SELECT list, GROUP BY, DISTINCT and ORDER BY."""
    import polars as pl
    from sqlglot import exp

    items = tree.expressions
    if len(items) == 1 and isinstance(items[0], exp.Star):
        items = [exp.column(c) for c in columns]
    elif any(isinstance(i, exp.Star) or (isinstance(i, exp.Column) and isinstance(i.this, exp.Star)) for i in items):
        items = [x for i in items for x in ([exp.column(c) for c in columns] if isinstance(i, exp.Star) or (
            isinstance(i, exp.Column) and isinstance(i.this, exp.Star)) else [i])]
    used: set[str] = set()
    names = [_output_name(i, k, used) for k, i in enumerate(items)]
    exprs = [tx.value(i.this if isinstance(i, exp.Alias) else i).alias(n) for i, n in zip(items, names)]
    by_alias = {n: i.this if isinstance(i, exp.Alias) else i for i, n in zip(items, names)}
    group = tree.args.get("group")
    aggregated = group is not None or any(_contains_aggregate(i) for i in items)
    order = tree.args.get("order")
    if aggregated:
        keys = [tx.value(g) for g in group.expressions] if group is not None else []
        key_sql = {g.sql("tsql").lower() for g in group.expressions} if group is not None else set()
        for i, n in zip(items, names):
            inner = i.this if isinstance(i, exp.Alias) else i
            if not _contains_aggregate(inner) and inner.sql("tsql").lower() not in key_sql:
                raise AdqlError(f"{inner.sql('tsql')!r} must be in GROUP BY or inside an aggregate such as COUNT")
        if keys:
            key_names = [f"__key{k}" for k in range(len(keys))]
            grouped = frame.group_by([k.alias(n) for k, n in zip(keys, key_names)], maintain_order=False)
            aggs = []
            out = []
            for i, n, e in zip(items, names, exprs):
                inner = i.this if isinstance(i, exp.Alias) else i
                if _contains_aggregate(inner):
                    aggs.append(e)
                    out.append(pl.col(n))
                else:
                    k = [g.sql("tsql").lower() for g in group.expressions].index(inner.sql("tsql").lower())
                    out.append(pl.col(key_names[k]).alias(n))
            frame = grouped.agg(aggs) if aggs else grouped.agg()
            frame = frame.select(out)
        else:
            frame = frame.select(exprs)
        if order is not None:
            by, kw = _order(order, names, by_alias, tx, after_select=True)
            frame = frame.sort(by, **kw)
    else:
        if order is not None:
            by, desc, nulls = _order(order, names, by_alias, tx, after_select=False)
            frame = frame.sort(by, descending=desc, nulls_last=nulls)
        frame = frame.select(exprs)
    if tree.args.get("distinct") is not None:
        frame = frame.unique(maintain_order=True)
    return frame


def _order(order, names, by_alias, tx, *, after_select: bool):
    import polars as pl
    from sqlglot import exp

    by, desc, nulls = [], [], []
    for o in order.expressions:
        target = o.this
        if isinstance(target, exp.Literal) and not target.is_string and target.this.isdigit():
            k = int(target.this) - 1
            if not 0 <= k < len(names):
                raise AdqlError(f"ORDER BY {target.this}: the select list has {len(names)} columns")
            name = names[k]
            by.append(pl.col(name) if after_select else tx.value(by_alias[name]))
        elif isinstance(target, exp.Column) and target.name in by_alias and not target.table:
            by.append(pl.col(target.name) if after_select else tx.value(by_alias[target.name]))
        elif after_select:
            raise AdqlError("ORDER BY of a grouped query takes columns of the select list")
        else:
            by.append(tx.value(target))
        d = bool(o.args.get("desc"))
        desc.append(d)
        nulls.append(not d)  # nulls sort as the largest values, as in PostgreSQL
    if after_select:
        return by, {"descending": desc, "nulls_last": nulls}
    return by, desc, nulls
