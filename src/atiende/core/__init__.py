"""Cross-cutting foundations: configuration, database, bus, clock, ids, errors, i18n."""
