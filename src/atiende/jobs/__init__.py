"""Durable timers and jobs: rows in the database, claimed by workers, run at most once."""
