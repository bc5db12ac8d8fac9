"""Synthetic CHT deployment for demos, tests and benchmarks.

``generator`` builds, deterministically from a seed and a number of households, the documents a
CHT instance stores in ``medic``, ``medic-sentinel``, ``medic-users-meta`` and ``medic-logs``
(contacts of the legacy and the configurable hierarchy, users, XForm / SMS reports, form
definitions with their XML, Sentinel info docs, telemetry, feedback, API logs), streaming them so
that hundreds of thousands of documents need no more memory than a few. It also plans rounds of
edits, deletes and conflicts. ``loader`` pushes a deployment into CouchDB through ``_bulk_docs``
and ``cli`` (``cht-demo-data``) wraps both.
"""
