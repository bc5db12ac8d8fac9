"""Local servers for the demo and the tests: embedded PostgreSQL, pouchdb-server, Superset and
`dagster dev` (driven through its GraphQL API).

Each is started on a 127.0.0.1 port, tracked by its PID (or process group), and stopped by that.
"""
