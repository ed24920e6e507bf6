"""Prediction on scenes of any size: tiling, reading, writing, footprints, scores, export.

pyogrio is imported here, before any of these modules imports TensorFlow, on purpose.
TensorFlow's library exports its own SQLite, built without the R*Tree module, and a GDAL that is
loaded after it binds its SQLite calls to that copy: GeoPackages are then written without
their spatial index (checked in ``inference.vectors``), and QGIS reads every feature on every
redraw. Loaded first, pyogrio's GDAL binds to the SQLite it ships with.
"""

import pyogrio  # noqa: F401
