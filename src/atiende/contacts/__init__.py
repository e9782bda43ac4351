"""Customers and their identities on every channel, merged into one profile."""
