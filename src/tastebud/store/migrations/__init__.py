"""Alembic migrations for the Tastebud schema (run with ``tastebud db upgrade``)."""
