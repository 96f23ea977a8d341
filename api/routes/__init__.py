"""Routers, one module per domain noun; ``api.app.create_app`` composes them."""
