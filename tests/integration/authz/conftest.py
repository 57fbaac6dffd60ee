"""The authz integration tests share the unit tests' PKI, signers and policy fixtures."""

from __future__ import annotations

from tests.unit.authz.conftest import ec_signer, pki, policy_dir, signer, write_policy

__all__ = ["ec_signer", "pki", "policy_dir", "signer", "write_policy"]
