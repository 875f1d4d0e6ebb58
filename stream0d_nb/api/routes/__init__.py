"""Small routers of the API, one per area (datasets, data, ingest, formulas, alerts, access)."""
