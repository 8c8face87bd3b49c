"""The catalog as an IVOA ObsCore 1.1 table, so VO tools can read it.

Column names, units and meanings follow ObsCore: times ``t_min``/``t_max`` in MJD (UTC),
``t_exptime`` in s, ``s_ra``/``s_dec`` in deg (ICRS), ``access_estsize`` in kB. Mandatory
columns this catalog does not know (spatial extent, spectral range, polarisation) are present
and null, as the standard asks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

#: MIME types of ``access_format`` by ``file_format``.
ACCESS_FORMATS = {"fits": "application/fits", "hdf5": "application/x-hdf5", "netcdf": "application/x-netcdf",
                  "csv": "text/csv"}

#: ObsCore column -> (unit, UCD), for VOTable writers.
UNITS = {
    "t_min": ("d", "time.start;obs.exposure"), "t_max": ("d", "time.end;obs.exposure"),
    "t_exptime": ("s", "time.duration;obs.exposure"), "s_ra": ("deg", "pos.eq.ra"),
    "s_dec": ("deg", "pos.eq.dec"), "access_estsize": ("kbyte", "phys.size;meta.file"),
}

_MJD_EPOCH_DAYS = 40587.0  # MJD of 1970-01-01
_US_PER_DAY = 86_400_000_000


def obscore_frame(observations: pl.LazyFrame) -> pl.LazyFrame:
    """Map a lazy observations frame to ObsCore columns (lazily)."""
    import polars as pl

    def mjd(col: str) -> pl.Expr:
        return pl.col(col).dt.epoch("us").cast(pl.Float64) / _US_PER_DAY + _MJD_EPOCH_DAYS

    null_f = pl.lit(None, pl.Float64)
    null_i = pl.lit(None, pl.Int64)
    return observations.select(
        pl.col("dataproduct_type"),
        pl.col("calib_level"),
        pl.col("mission_id").alias("obs_collection"),
        pl.col("dataset_id").alias("obs_id"),
        (pl.lit("ivo://cosmoscope/") + pl.col("dataset_id")).alias("obs_publisher_did"),
        (pl.lit("file://") + pl.col("file_path")).alias("access_url"),
        pl.col("file_format").replace_strict(ACCESS_FORMATS, default=None, return_dtype=pl.String)
        .alias("access_format"),
        ((pl.col("file_size") + 1023) // 1024).alias("access_estsize"),
        pl.col("target_object").alias("target_name"),
        pl.col("ra").alias("s_ra"),
        pl.col("dec").alias("s_dec"),
        null_f.alias("s_fov"),
        pl.lit(None, pl.String).alias("s_region"),
        null_f.alias("s_resolution"),
        mjd("observation_timestamp").alias("t_min"),
        mjd("observation_end").alias("t_max"),
        pl.col("exposure_time").alias("t_exptime"),
        null_f.alias("t_resolution"),
        null_f.alias("em_min"),
        null_f.alias("em_max"),
        null_f.alias("em_res_power"),
        pl.lit(None, pl.String).alias("o_ucd"),
        pl.lit(None, pl.String).alias("pol_states"),
        pl.col("satellite_name").alias("facility_name"),
        pl.col("instrument_type").alias("instrument_name"),
        null_i.alias("s_xel1"), null_i.alias("s_xel2"), null_i.alias("t_xel"), null_i.alias("em_xel"),
        null_i.alias("pol_xel"),
    )
