"""What the TAP service holds, described once: ``TAP_SCHEMA`` as polars frames and VOSI
``/tables`` as XML, both generated from :data:`cosmoscope.obscore.COLUMNS`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cosmoscope.obscore import COLUMNS as OBSCORE

if TYPE_CHECKING:
    import polars as pl


@dataclass(frozen=True)
class Col:
    """A column of a TAP_SCHEMA table (described in TAP_SCHEMA.columns itself)."""

    name: str
    datatype: str
    description: str
    principal: bool = True


#: TAP 1.1 section 4: the tables of TAP_SCHEMA and their columns.
TAP_SCHEMA_TABLES: dict[str, tuple[Col, ...]] = {
    "schemas": (Col("schema_name", "char", "schema name for reference to tap_schema.schemas"),
                Col("utype", "char", "lists the utypes of schemas in the tableset"),
                Col("description", "char", "describes schemas in the tableset"),
                Col("schema_index", "int", "recommended sort order when listing schemas")),
    "tables": (Col("schema_name", "char", "the schema this table belongs to"),
               Col("table_name", "char", "the fully qualified table name"),
               Col("table_type", "char", "one of: table view"),
               Col("utype", "char", "lists the utype of tables in the tableset"),
               Col("description", "char", "describes tables in the tableset"),
               Col("table_index", "int", "recommended sort order when listing tables")),
    "columns": (Col("table_name", "char", "the table this column belongs to"),
                Col("column_name", "char", "the column name"),
                Col("utype", "char", "lists the utypes of columns in the tableset"),
                Col("ucd", "char", "lists the UCDs of columns in the tableset"),
                Col("unit", "char", "lists the unit used for column values in the tableset"),
                Col("description", "char", "describes the columns in the tableset"),
                Col("datatype", "char", "lists the ADQL datatype of columns in the tableset"),
                Col("arraysize", "char", "lists the size of variable-length columns in the tableset"),
                Col("xtype", "char", "a DALI or custom extended type annotation"),
                Col("size", "int", "deprecated: use arraysize"),
                Col("principal", "int", "a principal column; 1 means 1, 0 means 0"),
                Col("indexed", "int", "an indexed column; 1 means 1, 0 means 0"),
                Col("std", "int", "a standard column; 1 means 1, 0 means 0"),
                Col("column_index", "int", "recommended sort order when listing columns")),
    "keys": (Col("key_id", "char", "unique key to join to tap_schema.key_columns"),
             Col("from_table", "char", "the table with the foreign key"),
             Col("target_table", "char", "the table with the primary key"),
             Col("utype", "char", "lists the utype of keys in the tableset"),
             Col("description", "char", "describes keys in the tableset")),
    "key_columns": (Col("key_id", "char", "key to join to tap_schema.keys"),
                    Col("from_column", "char", "column in the from_table"),
                    Col("target_column", "char", "column in the target_table")),
}

SCHEMAS = {"ivoa": "IVOA standard data models: the ObsCore table of this catalog",
           "tap_schema": "Description of the tables and columns this service offers"}
TABLES = {"ivoa.obscore": ("ivoa", "ivo://ivoa.net/std/ObsCore#table-1.1",
                           "One row per data file of the catalog, in the IVOA ObsCore 1.1 model")}
TABLES.update({f"tap_schema.{t}": ("tap_schema", None, f"TAP_SCHEMA {t}") for t in TAP_SCHEMA_TABLES})


def _arraysize(datatype: str) -> str | None:
    return "*" if datatype == "char" else None


def column_rows() -> list[dict]:
    """Every column of every table, as TAP_SCHEMA.columns rows."""
    rows = []
    for i, c in enumerate(OBSCORE):
        rows.append(dict(table_name="ivoa.obscore", column_name=c.name, utype=c.utype, ucd=c.ucd, unit=c.unit,
                         description=c.description, datatype=c.datatype, arraysize=_arraysize(c.datatype),
                         xtype=c.xtype, size=None, principal=int(c.principal), indexed=int(c.indexed), std=1,
                         column_index=i + 1))
    for t, cols in TAP_SCHEMA_TABLES.items():
        for i, c in enumerate(cols):
            rows.append(dict(table_name=f"tap_schema.{t}", column_name=c.name, utype=None, ucd=None, unit=None,
                             description=c.description, datatype=c.datatype, arraysize=_arraysize(c.datatype),
                             xtype=None, size=None, principal=int(c.principal), indexed=0, std=1,
                             column_index=i + 1))
    return rows


def tap_schema_frame(name: str) -> pl.LazyFrame:
    """One TAP_SCHEMA table (``schemas``, ``tables``, ``columns``, ``keys``, ``key_columns``)."""
    import polars as pl

    cols = TAP_SCHEMA_TABLES[name]
    if name == "schemas":
        rows = [dict(schema_name=s, utype=None, description=d, schema_index=i) for i, (s, d) in enumerate(SCHEMAS.items())]
    elif name == "tables":
        rows = [dict(schema_name=s, table_name=t, table_type="table", utype=u, description=d, table_index=i)
                for i, (t, (s, u, d)) in enumerate(TABLES.items())]
    elif name == "columns":
        rows = column_rows()
    else:
        rows = []
    schema = {c.name: pl.String if c.datatype == "char" else pl.Int32 for c in cols}
    return pl.DataFrame(rows, schema=schema, orient="row").lazy() if rows else pl.DataFrame(schema=schema).lazy()


def tableset_xml() -> bytes:
    """VOSI ``/tables``: the tableset document (VODataService 1.2)."""
    import xml.etree.ElementTree as ET

    ns = {"vosi": "http://www.ivoa.net/xml/VOSITables/v1.0", "vs": "http://www.ivoa.net/xml/VODataService/v1.1",
          "xsi": "http://www.w3.org/2001/XMLSchema-instance"}
    root = ET.Element("vosi:tableset", {f"xmlns:{k}": v for k, v in ns.items()})
    by_table: dict[str, list[dict]] = {}
    for r in column_rows():
        by_table.setdefault(r["table_name"], []).append(r)
    for schema_name, description in SCHEMAS.items():
        s = ET.SubElement(root, "schema")
        ET.SubElement(s, "name").text = schema_name
        ET.SubElement(s, "description").text = description
        for table, (sname, utype, tdesc) in TABLES.items():
            if sname != schema_name:
                continue
            t = ET.SubElement(s, "table", {"type": "output"})
            ET.SubElement(t, "name").text = table
            ET.SubElement(t, "description").text = tdesc
            if utype:
                ET.SubElement(t, "utype").text = utype
            for r in by_table.get(table, []):
                c = ET.SubElement(t, "column", {"std": "true"})
                ET.SubElement(c, "name").text = r["column_name"]
                ET.SubElement(c, "description").text = r["description"]
                if r["unit"]:
                    ET.SubElement(c, "unit").text = r["unit"]
                if r["ucd"]:
                    ET.SubElement(c, "ucd").text = r["ucd"]
                if r["utype"]:
                    ET.SubElement(c, "utype").text = r["utype"]
                attrs = {"xsi:type": "vs:VOTableType"}
                if r["arraysize"]:
                    attrs["arraysize"] = r["arraysize"]
                if r["xtype"]:
                    attrs["extendedType"] = r["xtype"]
                ET.SubElement(c, "dataType", attrs).text = r["datatype"]
                if r["indexed"]:
                    ET.SubElement(c, "flag").text = "indexed"
                if r["principal"]:
                    ET.SubElement(c, "flag").text = "primary"
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def field_meta(table: str) -> dict[str, dict]:
    """Column name -> VOTable FIELD attributes (unit, ucd, utype, description, xtype)."""
    return {r["column_name"]: r for r in column_rows() if r["table_name"] == table}
