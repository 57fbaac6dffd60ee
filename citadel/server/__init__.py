"""The CA as a network service: Istio's CSR API over gRPC/TLS (``citadel serve``).

Entry points: :mod:`.app` (the ``serve`` command), :class:`.ca_server.CaServer` (one
process's server on an open CA), :mod:`.supervisor` (several worker processes),
:mod:`.status` (the one error → gRPC status mapping), :mod:`.authn` (authenticators).
"""
