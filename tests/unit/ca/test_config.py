from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from citadel.ca.config import CaConfig
from citadel.ca.errors import CaConfigError
from citadel.identity.keys import KeyType
from citadel.identity.spiffe_id import TrustDomain


def test_defaults_match_the_design(tmp_path: Path) -> None:
    config = CaConfig(data_dir=tmp_path)
    assert config.trust_domain == TrustDomain("cluster.local")
    assert config.key_type is KeyType.EC_P256
    assert (config.root_ttl, config.intermediate_ttl) == (
        timedelta(days=3650),
        timedelta(days=365),
    )
    assert (config.default_ttl, config.max_ttl, config.skew) == (
        timedelta(hours=24),
        timedelta(days=90),
        timedelta(minutes=2),
    )
    assert config.database_url == f"sqlite:///{tmp_path.resolve()}/citadel.db"


def test_an_explicit_database_url_is_used_as_given(tmp_path: Path) -> None:
    url = "postgresql+psycopg://citadel@127.0.0.1/citadel"
    assert CaConfig(data_dir=tmp_path, db_url=url).database_url == url


def test_the_passphrase_is_not_in_the_repr(tmp_path: Path) -> None:
    assert "s3cret" not in repr(CaConfig(data_dir=tmp_path, key_passphrase=b"s3cret"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"default_ttl": timedelta(days=91)}, "default_ttl must not exceed max_ttl"),
        ({"max_ttl": timedelta(0)}, "max_ttl must be positive"),
        ({"root_ttl": timedelta(days=-1)}, "root_ttl must be positive"),
        ({"intermediate_ttl": timedelta(days=4000)}, "must not exceed root_ttl"),
        ({"skew": timedelta(minutes=-1)}, "skew"),
        ({"key_type": "dsa-1024"}, "unknown key type"),
        ({"max_batch": 0}, "max_batch"),
    ],
    ids=[
        "default-over-max",
        "zero-max",
        "negative-root-ttl",
        "intermediate-outlives-root",
        "negative-skew",
        "unknown-key-type",
        "zero-batch",
    ],
)
def test_unusable_settings_are_config_errors(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(CaConfigError, match=message):
        CaConfig(data_dir=tmp_path, **kwargs)  # type: ignore[arg-type]
