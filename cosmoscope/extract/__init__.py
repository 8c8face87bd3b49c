"""Metadata extraction: FITS, HDF5, netCDF and CSV files to catalog records.

>>> from cosmoscope.extract import extract_file, sniff_format
>>> rec = extract_file("hx01234567_evt2.fits")          # doctest: +SKIP
>>> rec["mission_id"], rec["field_sources"]["mission_id"]  # doctest: +SKIP
('HELIOS-X', 'FITS[1]:TELESCOP')

One module per format (:mod:`~cosmoscope.extract.fits`, :mod:`~cosmoscope.extract.hdf5`,
:mod:`~cosmoscope.extract.netcdf`, :mod:`~cosmoscope.extract.csv`) reads attribute sets;
:mod:`~cosmoscope.extract.mapping` turns them into catalog fields with provenance, guided by
mission profiles (:mod:`~cosmoscope.extract.profiles`); :mod:`~cosmoscope.extract.quality`
scores the result. Extraction knows nothing about storage. Format libraries are imported only
when a file of that format is read.
"""

from __future__ import annotations

from cosmoscope.extract.core import EXTRACTOR_VERSION, extract_file, sniff_format

__all__ = ["EXTRACTOR_VERSION", "extract_file", "sniff_format"]
