"""The catalog as an IVOA ObsCore 1.1 table, so VO tools can read it.

:data:`COLUMNS` is the one description of the table: names, units, UCDs, utypes and meanings
as ObsCore 1.1 defines them, and how each is made from the observation columns. The lazy
frame (:func:`obscore_frame`), the TAP service's ``TAP_SCHEMA`` and VOSI ``/tables``, and the
VOTable fields all come from it. Times ``t_min``/``t_max`` are MJD (UTC), ``t_exptime`` s,
``s_ra``/``s_dec``/``s_fov`` deg (ICRS), ``access_estsize`` kB. Mandatory columns this catalog
does not know (spectral range, polarisation, ...) are present and null, as the standard asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

#: MIME types of ``access_format`` by ``file_format``.
ACCESS_FORMATS = {"fits": "application/fits", "hdf5": "application/x-hdf5", "netcdf": "application/x-netcdf",
                  "csv": "text/csv"}

_MJD_EPOCH_DAYS = 40587.0  # MJD of 1970-01-01
_US_PER_DAY = 86_400_000_000


@dataclass(frozen=True)
class Column:
    """One ObsCore column: its VO description and where its values come from."""

    name: str
    datatype: str  # TAP/VOTable: char, short, int, long, double
    unit: str | None
    ucd: str
    utype: str
    description: str
    #: The observations column it renames, or None (computed below, or always null).
    source: str | None = None
    principal: bool = False
    indexed: bool = False
    xtype: str | None = None

    @property
    def polars_dtype(self):
        import polars as pl

        return {"char": pl.String, "short": pl.Int16, "int": pl.Int32, "long": pl.Int64, "double": pl.Float64}[
            self.datatype]


def _c(name, datatype, unit, ucd, utype, description, source=None, **kw) -> Column:
    return Column(name, datatype, unit, ucd, "obscore:" + utype, description, source, **kw)


#: ObsCore 1.1 (IVOA Recommendation 2017-05-09), table 6 and appendix B, in the standard's order.
COLUMNS: tuple[Column, ...] = (
    _c("dataproduct_type", "char", None, "meta.code.class", "ObsDataset.dataProductType",
       "Data product type: image, cube, spectrum, sed, timeseries, visibility, event, measurements",
       "dataproduct_type", principal=True),
    _c("dataproduct_subtype", "char", None, "meta.code.class", "ObsDataset.dataProductSubtype",
       "Data product specific type"),
    _c("calib_level", "short", None, "meta.code;obs.calib", "ObsDataset.calibLevel",
       "Calibration level: 0 raw, 1 instrumental, 2 calibrated, 3 enhanced, 4 analysis", "calib_level",
       principal=True),
    _c("obs_collection", "char", None, "meta.id", "DataID.Collection",
       "Name of the data collection (the mission)", "mission_id", principal=True, indexed=True),
    _c("obs_id", "char", None, "meta.id", "DataID.observationID", "Observation id (the dataset id)",
       "dataset_id", principal=True, indexed=True),
    _c("obs_publisher_did", "char", None, "meta.ref.ivoid", "Curation.publisherDID",
       "Dataset identifier given by the publisher", principal=True),
    _c("access_url", "char", None, "meta.ref.url", "Access.reference", "URL used to access the dataset",
       principal=True),
    _c("access_format", "char", None, "meta.code.mime", "Access.format", "File content format (MIME type)",
       principal=True),
    _c("access_estsize", "long", "kbyte", "phys.size;meta.file", "Access.size",
       "Estimated size of the dataset in kilobytes", principal=True),
    _c("target_name", "char", None, "meta.id;src", "Target.name", "Astronomical object observed, if any",
       "target_object", principal=True),
    _c("s_ra", "double", "deg", "pos.eq.ra", "Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C1",
       "Central right ascension, ICRS", "ra", principal=True, indexed=True),
    _c("s_dec", "double", "deg", "pos.eq.dec", "Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C2",
       "Central declination, ICRS", "dec", principal=True, indexed=True),
    _c("s_fov", "double", "deg", "phys.angSize;instr.fov", "Char.SpatialAxis.Coverage.Bounds.Extent.diameter",
       "Diameter (bounds) of the covered region", "s_fov", principal=True),
    _c("s_region", "char", None, "pos.outline;obs.field", "Char.SpatialAxis.Coverage.Support.Area",
       "Sky region covered by the data product (STC-S polygon, ICRS)", "s_region", principal=True,
       xtype="adql:REGION"),
    _c("s_resolution", "double", "arcsec", "pos.angResolution", "Char.SpatialAxis.Resolution.Refval.value",
       "Spatial resolution of data as FWHM", principal=True),
    _c("s_xel1", "long", None, "meta.number", "Char.SpatialAxis.numBins1", "Number of elements along the first axis"),
    _c("s_xel2", "long", None, "meta.number", "Char.SpatialAxis.numBins2", "Number of elements along the second axis"),
    _c("t_min", "double", "d", "time.start;obs.exposure", "Char.TimeAxis.Coverage.Bounds.Limits.StartTime",
       "Start time in MJD", principal=True, indexed=True),
    _c("t_max", "double", "d", "time.end;obs.exposure", "Char.TimeAxis.Coverage.Bounds.Limits.StopTime",
       "Stop time in MJD", principal=True, indexed=True),
    _c("t_exptime", "double", "s", "time.duration;obs.exposure", "Char.TimeAxis.Coverage.Support.Extent",
       "Total exposure time", "exposure_time", principal=True),
    _c("t_resolution", "double", "s", "time.resolution", "Char.TimeAxis.Resolution.Refval.value",
       "Temporal resolution FWHM", principal=True),
    _c("t_xel", "long", None, "meta.number", "Char.TimeAxis.numBins", "Number of elements along the time axis"),
    _c("em_min", "double", "m", "em.wl;stat.min", "Char.SpectralAxis.Coverage.Bounds.Limits.LoLimit",
       "Start in spectral coordinates (vacuum wavelength)", principal=True),
    _c("em_max", "double", "m", "em.wl;stat.max", "Char.SpectralAxis.Coverage.Bounds.Limits.HiLimit",
       "Stop in spectral coordinates (vacuum wavelength)", principal=True),
    _c("em_res_power", "double", None, "spect.resolution", "Char.SpectralAxis.Resolution.ResolPower.refVal",
       "Value of the resolving power along the spectral axis (R)", principal=True),
    _c("em_xel", "long", None, "meta.number", "Char.SpectralAxis.numBins",
       "Number of elements along the spectral axis"),
    _c("o_ucd", "char", None, "meta.ucd", "Char.ObservableAxis.ucd", "UCD of the observable axis (e.g. phot.flux)",
       principal=True),
    _c("pol_states", "char", None, "meta.code;phys.polarization", "Char.PolarizationAxis.stateList",
       "List of polarization states, or null"),
    _c("pol_xel", "long", None, "meta.number", "Char.PolarizationAxis.numBins",
       "Number of polarization samples"),
    _c("facility_name", "char", None, "meta.id;instr.tel", "Provenance.ObsConfig.Facility.name",
       "Name of the facility used for this observation", "satellite_name", principal=True),
    _c("instrument_name", "char", None, "meta.id;instr", "Provenance.ObsConfig.Instrument.name",
       "Name of the instrument used for this observation", "instrument_type", principal=True),
)

BY_NAME = {c.name: c for c in COLUMNS}


def _computed() -> dict[str, pl.Expr]:
    import polars as pl

    def mjd(col: str) -> pl.Expr:
        return pl.col(col).dt.epoch("us").cast(pl.Float64) / _US_PER_DAY + _MJD_EPOCH_DAYS

    return {
        "obs_publisher_did": pl.lit("ivo://cosmoscope/") + pl.col("dataset_id"),
        "access_url": pl.lit("file://") + pl.col("file_path"),
        "access_format": pl.col("file_format").replace_strict(ACCESS_FORMATS, default=None, return_dtype=pl.String),
        "access_estsize": (pl.col("file_size") + 1023) // 1024,
        "t_min": mjd("observation_timestamp"),
        "t_max": mjd("observation_end"),
    }


def obscore_frame(observations: pl.LazyFrame) -> pl.LazyFrame:
    """Map a lazy observations frame to ObsCore columns (lazily); filters on renamed columns still
    reach the store."""
    import polars as pl

    computed = _computed()
    exprs = []
    for c in COLUMNS:
        if c.source is not None:
            e = pl.col(c.source)
        elif c.name in computed:
            e = computed[c.name]
        else:
            e = pl.lit(None, c.polars_dtype)
        exprs.append(e.cast(c.polars_dtype).alias(c.name))
    return observations.select(exprs)
