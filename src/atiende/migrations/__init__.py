"""Alembic migrations, shipped inside the package so `atiende db upgrade` works anywhere."""
