from __future__ import annotations

import pytest

from citadel.ca.keymanager import MemoryKeyManager
from citadel.ca.keymanager.base import KeyManager
from tests.unit.ca.keymanager_contract import KeyManagerContract


class TestMemoryKeyManager(KeyManagerContract):
    @pytest.fixture
    def manager(self) -> KeyManager:
        return MemoryKeyManager()
