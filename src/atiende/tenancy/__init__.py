"""Tenants (organisations) and the rules about them."""
