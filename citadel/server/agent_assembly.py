"""Wiring the node-agent API onto an open CA: entry index, JWT keys, service, guarded handler.

Agent principals (who may call the API at all) are, by default, the reserved agent path
``spiffe://<trust domain>/citadel/agent/*`` (only an operator can have such identities
issued: join tokens, ``cert mint``) and every configured trusted node agent
(``ServerConfig.node_agents``). Which entries each agent gets is decided per call from the
registration entries (descendants of the agent's own SPIFFE ID).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc
from cryptography import x509

from citadel.ca.context import CaContext
from citadel.ca.issuer import Issuer
from citadel.ca.jwt_keys import JwtKeyPolicy, JwtKeySet
from citadel.identity.pem import serial_hex
from citadel.identity.spiffe_id import TrustDomain
from citadel.server.agent_entry_index import EntryIndex
from citadel.server.agent_service import AgentService, AgentServiceLimits
from citadel.server.agent_servicer import (
    AgentServicer,
    agent_method_table,
    agent_service_handler,
)
from citadel.server.authn.mtls import MtlsAuthenticator
from citadel.server.config import ServerConfig
from citadel.store.errors import NotFoundError
from citadel.store.repository import Repository

__all__ = ["AGENT_PATH_PREFIX", "AgentApiParts", "build_agent_api", "default_agent_principals"]

AGENT_PATH_PREFIX = "/citadel/agent/"


@dataclass
class AgentApiParts:
    handler: grpc.GenericRpcHandler
    service: AgentService
    entries: EntryIndex
    jwt_keys: JwtKeySet

    def close(self) -> None:
        self.service.close()


def default_agent_principals(config: ServerConfig, trust_domain: TrustDomain) -> tuple[str, ...]:
    reserved = f"{trust_domain.id}{AGENT_PATH_PREFIX}*"
    return (reserved, *sorted(config.node_agents))


def _is_revoked(repository: Repository) -> Callable[[x509.Certificate], bool]:
    def check(cert: x509.Certificate) -> bool:
        try:
            return repository.get_certificate(serial_hex(cert)).revoked_at is not None
        except NotFoundError:
            return False

    return check


def build_agent_api(
    *,
    ca: CaContext,
    config: ServerConfig,
    agent_principals: Sequence[str] | None = None,
    jwt_policy: JwtKeyPolicy | None = None,
    limits: AgentServiceLimits | None = None,
    crls: Callable[[], Sequence[bytes]] = tuple,
    issuer: Issuer | None = None,
    is_revoked: Callable[[x509.Certificate], bool] | None = None,
    on_bundle_ack: Callable[[str, str], None] | None = None,
) -> AgentApiParts:
    """Build the agent API over ``ca`` and make sure a JWT-SVID key exists.

    ``issuer`` is the one the server signs with (default: the CA's own); pass the server's
    when it records through something else (a cross-process write lock). ``crls`` and
    ``is_revoked`` come from the CA lifecycle when the server runs one (the default
    revocation check reads the store per call); ``on_bundle_ack`` records the bundle
    versions callers report in ``GetBundle``.

    Raises:
        ValueError: a malformed agent principal pattern.
        CaNotReadyError, KeyManagerError, StoreError: the JWT keys cannot be set up.
    """
    issuer = issuer if issuer is not None else ca.issuer
    trust_domain = issuer.trust_domain
    principals = (
        tuple(agent_principals)
        if agent_principals is not None
        else default_agent_principals(config, trust_domain)
    )
    table = agent_method_table(principals, trust_domain)
    jwt_keys = JwtKeySet(
        store=ca.repository, key_manager=ca.key_manager, clock=ca.clock, policy=jwt_policy
    )
    jwt_keys.maintain()
    entries = EntryIndex(ca.repository)
    service = AgentService(
        authenticator=MtlsAuthenticator(
            roots=lambda: issuer.trust_bundle().x509_authorities,
            trust_domain=trust_domain,
            clock=ca.clock,
            is_revoked=is_revoked if is_revoked is not None else _is_revoked(ca.repository),
        ),
        entries=entries,
        issuer=issuer,
        jwt_keys=jwt_keys,
        crls=crls,
        limits=limits,
        on_bundle_ack=on_bundle_ack,
    )
    handler = agent_service_handler(AgentServicer(service), table)
    return AgentApiParts(handler=handler, service=service, entries=entries, jwt_keys=jwt_keys)
