"""The website chat widget: widget settings, visitors and their conversations."""
