"""The domain's rules, free of any framework: one vocabulary, CRS and GCJ-02, geometry checks, the event
lifecycle, privacy masks, levels of command, location checks and the JSON encoding of domain values.

Nothing here opens a database, serves HTTP or draws a map (import-linter forbids SQLAlchemy, psycopg,
FastAPI and pydeck); :mod:`gridmap.storage`, :mod:`gridmap.services` and :mod:`api` build on it.
"""
