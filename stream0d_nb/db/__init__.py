"""The SQL registry (SQLAlchemy 2 + Alembic): datasets, channels, configuration, events, access.

``registry.Registry`` opens the database; each ``*_tables`` module keeps the tables of one
part of the platform (alerts, access, recalibration, views) and its registry class.
"""
