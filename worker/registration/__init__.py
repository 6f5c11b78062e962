"""Registration: the registrar process that keeps this worker known to its orchestrators.

`byoc` speaks go-livepeer's capability API, `keeper` keeps one capability registered with
one orchestrator, `process` is the registrar process itself, and `state` the file through
which `/readyz` and `/metrics` see what it knows.
"""
