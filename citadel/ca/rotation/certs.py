"""Certificates for rotated authorities. Each gets a distinct subject (a short random tag
after the usual common name) so that two generations never share an issuer name: CRLs and
chain building then always find the right one."""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509

from citadel.ca.authority import INTERMEDIATE_COMMON_NAME, ROOT_COMMON_NAME, Authority
from citadel.ca.keymanager.base import Key
from citadel.identity.spiffe_id import TrustDomain
from citadel.identity.x509_templates import CaSpec, ca_builder

__all__ = ["intermediate_certificate", "root_certificate"]


def root_certificate(
    key: Key, *, trust_domain: TrustDomain, now: datetime, ttl: timedelta, skew: timedelta, tag: str
) -> x509.Certificate:
    """A self-signed root valid from ``now - skew`` for ``ttl``."""
    spec = CaSpec(
        trust_domain=trust_domain,
        common_name=f"{ROOT_COMMON_NAME} {tag}",
        public_key=key.public_key(),
        not_before=now - skew,
        not_after=now + ttl,
    )
    return key.sign_certificate(ca_builder(spec, None))


def intermediate_certificate(
    key: Key,
    parent: Authority,
    *,
    trust_domain: TrustDomain,
    now: datetime,
    ttl: timedelta,
    skew: timedelta,
    tag: str,
) -> x509.Certificate:
    """An intermediate signed by ``parent`` (path length 0), clamped to the parent's life."""
    spec = CaSpec(
        trust_domain=trust_domain,
        common_name=f"{INTERMEDIATE_COMMON_NAME} {tag}",
        public_key=key.public_key(),
        not_before=max(now - skew, parent.not_before),
        not_after=min(now + ttl, parent.not_after),
        path_length=0,
    )
    return parent.key.sign_certificate(ca_builder(spec, parent.cert))
