"""Users, roles, password login, web sessions and API tokens."""
