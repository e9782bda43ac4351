"""The audit log of administrative actions: who, what, when, before and after."""
