"""Interactions (one customer contact on one channel), their messages, notes and timeline."""
