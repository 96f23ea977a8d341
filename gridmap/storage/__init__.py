"""Storage: the only package that knows tables, SQL and WKB. SQL is grouped by table or aggregate, not by
the service that happens to use it, and each operation has one implementation.

The schema and the connection
    ``models`` / ``models_levels`` (SQLAlchemy 2 + GeoAlchemy2 models), ``migrations`` and ``migrate``
    (Alembic), ``db`` (engines, pools, URLs), ``cluster`` (the embedded PostgreSQL).

SQL by table or aggregate (each function takes the caller's SQLAlchemy ``Connection`` and runs in its
transaction; geometries come back as shapely geometries or GeoDataFrames in EPSG:4326, never as WKB)
    ``areas``        districts, streets, communities, grids: versioned boundaries, what lies under an area,
                     where a point falls, extents, the area filter of reads
    ``scopes``       SQL fragments confining a read to an operator's area (any level)
    ``registry``     buildings, businesses, fire equipment (the places behind QR codes; counts, no people)
    ``people``       residents and households, and the log of every read of personal data
    ``roads``        the road graph (one read, for dispatch and the analyses) and the field app's street map
    ``teams``        teams and their members: status, positions, flagged fixes, who to call
    ``events``       events: intake, placement, near-duplicates, status and milestones, reporter, audit trail
    ``assignments``  offers to teams, answers, routes; the dispatch claim; lapsed offers
    ``escalation``   the ladders and events' rungs (due times, overdue, waiting for a team)
    ``units``        the units behind rungs and events' stints at them (a unit's inbox, its metrics)
    ``mediation``    mediation cases, their parties (personal data apart), sessions and outcomes
    ``metrics``      aggregates of events: rates, durations, figures of the map and the levels of command
    ``photos``       event photos and their content-addressed bytes
    ``receipts``     the resident's QR receipts and the report throttle
    ``idempotency``  the Idempotency-Keys of phones' actions
    ``users``        users, their sessions, the login throttle and the sessions' NOTIFY
    ``notify``       offers the notifier chases, and the LISTEN stream of a process
    ``simulation``   the simulation mark (clock, dispatch rule) and copies of a database
    ``dataset``      the dataset as a whole: load records, dataset info, counts, emptying, statistics

Layers and files
    ``layers`` (what a layer is, derived from the models, and the read of a layer as a GeoDataFrame),
    ``files`` (GeoJSON, GeoPackage, Shapefile, GeoParquet, CSV), ``bulk`` (typed binary COPY and upsert: the
    only raw-psycopg writes).

Private: ``_filters`` (area, bbox and time conditions; results as frames), ``_rows`` (psycopg row checks).

Raw psycopg, apart from COPY, is used where measured or required, always on the connection under the
caller's ``Connection`` or on a connection of its own: the intake's and dispatch's hot statements
(``events.intake_context``, ``events.insert_reported``, ``events.event_for_dispatch``,
``assignments.dispatch_state``, ``assignments.offer``: prepared statements, SQLAlchemy's statement layer cost a
tenth of an intake's CPU), ``teams.save_positions`` (binary array parameters, measured in
``scripts/bench_positions.py``), ``simulation.read_clock`` (the API's own connection, every request),
``notify.notifications`` (LISTEN needs a connection of its own) and the database-level statements of
``simulation`` (CREATE/DROP DATABASE run outside a transaction).
"""
