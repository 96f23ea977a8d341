"""Pure domain code: geometry, CRS, graphs. No SQL, no HTTP, no pydeck."""
