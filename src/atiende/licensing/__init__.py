"""Signed licences for on-premise installations: issuing, verifying and installing them."""
