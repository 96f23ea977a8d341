"""The HTTP adapter (FastAPI): parse, call one service, shape the response. No SQL here."""
