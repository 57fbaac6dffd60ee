from __future__ import annotations

import importlib
import pkgutil

import pytest

import citadel.authz

MODULES = sorted(f"citadel.authz.{m.name}" for m in pkgutil.iter_modules(citadel.authz.__path__))


@pytest.mark.parametrize("name", ["citadel.authz", *MODULES])
def test_all_is_unique_and_every_name_exists(name: str) -> None:
    """(ruff's RUF022 keeps each ``__all__`` sorted.)"""
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(set(exported)) == len(exported)
    for member in exported:
        assert hasattr(module, member), f"{name}.{member} is in __all__ but missing"


def test_package_exports_the_public_api_without_grpc_modules() -> None:
    for member in ("AuthzEngine", "Enforcer", "JwtVerifier", "MethodTable", "PolicyStore"):
        assert member in citadel.authz.__all__
    assert "AuthzServerInterceptor" not in citadel.authz.__all__
