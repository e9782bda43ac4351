"""Realtime delivery of domain events to browsers: who may see what, and gap-free resume."""
