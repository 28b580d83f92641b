"""Alembic migrations of the service store (shipped as package data, run by ``mien serve``)."""
