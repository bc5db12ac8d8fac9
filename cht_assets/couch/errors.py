"""Errors that never carry credentials: they name the database, not the URL."""


class CouchError(Exception):
    """A CouchDB request failed; the message names the database and the HTTP status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CouchAuthError(CouchError):
    """401/403: retrying cannot help, so callers fail at once."""


class CouchUnavailable(CouchError):
    """Connection errors, timeouts, 5xx and truncated bodies: worth retrying."""
