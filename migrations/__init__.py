"""Alembic revisions of the service database (packaged so an installed `bounty db upgrade` finds them)."""
