"""Signing in: local passwords, server-side sessions and LINE Login, as services (the HTTP and
cookie handling stays in server.py and web/)."""
