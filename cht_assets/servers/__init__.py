"""Local servers for the demo and the tests: embedded PostgreSQL and pouchdb-server.

Each is started on a 127.0.0.1 port, tracked by its PID, and stopped by that PID.
"""
