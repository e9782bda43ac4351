"""The HTTP edge: app factory, pages, static files, websocket hub."""
