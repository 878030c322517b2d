"""The server side of the runtime: build a server, run it, and the per-call wrapper.

Modules: ``_build`` (create_server, Service, health), ``_lifecycle`` (serve,
run_main: signals and ordered stop), ``_main`` (run_service: the ``main`` of a
service binary with a store), ``_wrapper`` (request id, access log, error
mapping per call), ``_reflection`` (reflection that serves the contracts'
comments). Import from :mod:`services.runtime`, which re-exports the public names.
"""
