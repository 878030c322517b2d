"""The client side of the runtime: call a service by name through discovery.

Modules: ``_client`` (Client, Connection), ``_channel`` (one round_robin channel
per service), ``_discovery`` (registry settings and the cached watch per
service), ``_retry`` (retry policy derived from the contracts, tenacity loop),
``_typed`` (TypedClient base, RegistryClient), ``_sync`` (blocking facade).
Import from :mod:`services.runtime`, which re-exports the public names.
"""
