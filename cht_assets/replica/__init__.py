"""Pure raw-replica layer: schema, COPY writer, and the checkpoint kept in the same transaction."""
