"""Integrations with optional third-party packages (each module imports its package:
``flask_rediscache.contrib.debug_toolbar`` needs flask-debugtoolbar)."""
