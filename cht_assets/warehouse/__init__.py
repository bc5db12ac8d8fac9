"""Pure: build and refresh the SQL objects of the view layers in PostgreSQL.

Readers never see an empty or half-built object: every change of an object happens in one
transaction. Incremental tables are maintained by the ids of the raw docs that changed since
their last refresh (raw.couchdb_docs.change_seq), deletes included.
"""
