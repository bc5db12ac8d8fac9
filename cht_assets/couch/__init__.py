"""Pure CouchDB HTTP client: streamed _changes, _all_docs, _bulk_docs, retries, redaction."""
