"""The behaviour every KeyManager must show. Subclass :class:`KeyManagerContract` and give
it a ``manager`` fixture; pytest then runs the whole suite against that implementation."""

from __future__ import annotations

import pickle
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from citadel.ca.errors import KeyManagerError, KeyNotFoundError, SigningError
from citadel.ca.keymanager.base import Key, KeyManager, key_matches_certificate
from citadel.identity.clock import ManualClock
from citadel.identity.keys import KeyType, generate_private_key, public_keys_equal
from citadel.identity.spiffe_id import TrustDomain
from citadel.identity.x509_templates import CaSpec, ca_builder

TD = TrustDomain("example.org")


def _self_signed_builder(key: Key, clock: ManualClock) -> x509.CertificateBuilder:
    now = clock.now()
    spec = CaSpec(
        trust_domain=TD,
        common_name="contract",
        public_key=key.public_key(),
        not_before=now - timedelta(minutes=1),
        not_after=now + timedelta(days=1),
    )
    return ca_builder(spec, None)


class KeyManagerContract:
    """Run against each implementation through a ``manager`` fixture."""

    @pytest.fixture
    def manager(self) -> KeyManager:  # pragma: no cover - overridden
        raise NotImplementedError

    def test_implements_the_key_manager_protocol(self, manager: KeyManager) -> None:
        assert isinstance(manager, KeyManager)

    @pytest.mark.parametrize(
        "key_type", [KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_2048], ids=str
    )
    def test_generated_key_has_the_requested_type_and_id(
        self, manager: KeyManager, key_type: KeyType
    ) -> None:
        key = manager.generate_key("k1", key_type)
        assert isinstance(key, Key)
        assert (key.key_id, key.key_type) == ("k1", key_type)

    def test_get_returns_a_key_with_the_same_public_key(self, manager: KeyManager) -> None:
        created = manager.generate_key("k1", KeyType.EC_P256)
        fetched = manager.get_key("k1")
        assert public_keys_equal(created.public_key(), fetched.public_key())

    def test_list_is_sorted_and_reflects_generate_and_delete(self, manager: KeyManager) -> None:
        assert manager.list_keys() == []
        manager.generate_key("b", KeyType.EC_P256)
        manager.generate_key("a", KeyType.EC_P256)
        assert manager.list_keys() == ["a", "b"]
        manager.delete_key("a")
        assert manager.list_keys() == ["b"]

    def test_deleted_key_cannot_be_fetched(self, manager: KeyManager) -> None:
        manager.generate_key("gone", KeyType.EC_P256)
        manager.delete_key("gone")
        with pytest.raises(KeyNotFoundError):
            manager.get_key("gone")

    def test_unknown_key_is_a_key_not_found_error(self, manager: KeyManager) -> None:
        with pytest.raises(KeyNotFoundError, match="missing"):
            manager.get_key("missing")
        with pytest.raises(KeyNotFoundError):
            manager.delete_key("missing")

    def test_generating_an_existing_id_is_refused_and_keeps_the_old_key(
        self, manager: KeyManager
    ) -> None:
        first = manager.generate_key("dup", KeyType.EC_P256)
        with pytest.raises(KeyManagerError, match="already exists"):
            manager.generate_key("dup", KeyType.EC_P256)
        assert public_keys_equal(manager.get_key("dup").public_key(), first.public_key())

    @pytest.mark.parametrize(
        "key_id", ["", "../escape", "a/b", ".hidden", "x" * 129, "sp ace", "nul\x00"],
        ids=["empty", "dotdot", "slash", "leading-dot", "too-long", "space", "nul"],
    )
    def test_unsafe_key_ids_are_rejected(self, manager: KeyManager, key_id: str) -> None:
        with pytest.raises(ValueError, match="key id"):
            manager.generate_key(key_id, KeyType.EC_P256)

    def test_imported_key_signs_as_that_key(self, manager: KeyManager) -> None:
        private = generate_private_key(KeyType.EC_P384)
        key = manager.import_key("imported", private)
        assert key.key_type is KeyType.EC_P384
        assert public_keys_equal(manager.get_key("imported").public_key(), private)

    @pytest.mark.parametrize(
        ("key_type", "digest"),
        [
            (KeyType.EC_P256, "sha256"),
            (KeyType.EC_P384, "sha384"),
            (KeyType.RSA_2048, "sha256"),
        ],
        ids=["p256-sha256", "p384-sha384", "rsa-sha256"],
    )
    def test_signed_certificate_verifies_with_the_matching_digest(
        self, manager: KeyManager, clock: ManualClock, key_type: KeyType, digest: str
    ) -> None:
        key = manager.generate_key("signer", key_type)
        cert = manager.get_key("signer").sign_certificate(_self_signed_builder(key, clock))
        cert.verify_directly_issued_by(cert)
        assert cert.signature_hash_algorithm is not None
        assert cert.signature_hash_algorithm.name == digest
        assert key_matches_certificate(key, cert)

    def test_signed_crl_verifies_with_the_public_key(
        self, manager: KeyManager, clock: ManualClock
    ) -> None:
        key = manager.generate_key("crl", KeyType.EC_P256)
        issuer = key.sign_certificate(_self_signed_builder(key, clock))
        crl = key.sign_crl(
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.subject)
            .last_update(clock.now())
            .next_update(clock.now() + timedelta(hours=1))
        )
        assert crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]

    @pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.RSA_2048], ids=str)
    def test_sign_bytes_gives_der_ecdsa_or_pkcs1v15(
        self, manager: KeyManager, key_type: KeyType
    ) -> None:
        key = manager.generate_key("jwt", key_type)
        signature = key.sign_bytes(b"header.payload")
        public = key.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, b"header.payload", ec.ECDSA(hashes.SHA256()))
            with pytest.raises(InvalidSignature):
                public.verify(signature, b"tampered", ec.ECDSA(hashes.SHA256()))
        else:
            assert isinstance(public, rsa.RSAPublicKey)
            public.verify(signature, b"header.payload", padding.PKCS1v15(), hashes.SHA256())

    def test_incomplete_builder_is_a_signing_error(self, manager: KeyManager) -> None:
        key = manager.generate_key("k", KeyType.EC_P256)
        with pytest.raises(SigningError, match="could not sign"):
            key.sign_certificate(x509.CertificateBuilder())

    def test_key_handle_exposes_no_private_key_material(self, manager: KeyManager) -> None:
        key = manager.generate_key("secret", KeyType.EC_P256)
        private_types = (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)
        for name in dir(key):
            value = getattr(key, name)
            assert not isinstance(value, private_types), name
            assert not hasattr(value, "private_bytes"), name
            assert not hasattr(value, "private_numbers"), name
        assert not hasattr(key, "__dict__")
        with pytest.raises(TypeError):
            pickle.dumps(key)
        assert "PRIVATE" not in repr(key)
