"""Which stored authority fills which slot: current, next (prepared) and draining.

For each kind (root, intermediate):

* **current**: the intermediate that signs (the newest active one whose key Citadel holds;
  the same rule :func:`citadel.ca.bootstrap.load_authorities` uses) and its root;
* **next**: a prepared authority waiting to be activated. A next *root* comes with a prepared
  intermediate under it; a next *intermediate* alone is under the current root;
* **draining**: still active (a root stays in the trust bundle) but no longer signing; it
  waits to be retired once nothing it signed is still valid.

This module only reads records; it is a pure function of the list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from citadel.ca.authority_records import is_own
from citadel.ca.errors import CaNotInitialisedError, CaNotReadyError
from citadel.store.records import AuthorityRecord

__all__ = ["AuthoritySlots", "Slot", "read_slots"]

MAX_CHAIN_DEPTH = 8


class Slot(StrEnum):
    ROOT = "root"
    INTERMEDIATE = "intermediate"


def _newest(records: Iterable[AuthorityRecord]) -> AuthorityRecord | None:
    return max(records, key=lambda r: (r.activated_at or r.created_at, r.created_at), default=None)


@dataclass(frozen=True, kw_only=True)
class AuthoritySlots:
    signer: AuthorityRecord
    root: AuthorityRecord
    next_root: AuthorityRecord | None
    next_root_intermediate: AuthorityRecord | None
    next_intermediate: AuthorityRecord | None
    draining_roots: tuple[AuthorityRecord, ...]
    draining_intermediates: tuple[AuthorityRecord, ...]
    records: tuple[AuthorityRecord, ...]

    def by_id(self, authority_id: str) -> AuthorityRecord | None:
        return next((r for r in self.records if r.id == authority_id), None)

    def root_of(self, record: AuthorityRecord) -> AuthorityRecord:
        """The root at the top of ``record``'s parent chain.

        Raises:
            CaNotReadyError: a parent is missing or the chain loops.
        """
        current = record
        for _ in range(MAX_CHAIN_DEPTH):
            if current.parent_id is None:
                return current
            parent = self.by_id(current.parent_id)
            if parent is None:
                raise CaNotReadyError(f"authority {current.id} names a missing parent")
            current = parent
        raise CaNotReadyError(f"the parent chain of authority {record.id} is too long")

    def descendants(self, root: AuthorityRecord) -> tuple[AuthorityRecord, ...]:
        """Every intermediate whose chain ends at ``root``."""
        return tuple(
            r for r in self.records if r.kind == "intermediate" and self.root_of(r).id == root.id
        )

    def intermediates_draining_under(self, root: AuthorityRecord) -> tuple[AuthorityRecord, ...]:
        return tuple(r for r in self.draining_intermediates if self.root_of(r).id == root.id)


def read_slots(records: Sequence[AuthorityRecord]) -> AuthoritySlots:
    """Sort the X.509 authorities into slots.

    Raises:
        CaNotInitialisedError: no active intermediate with a Citadel-held key exists.
        CaNotReadyError: the records are inconsistent (missing parent, loop).
    """
    x509_records = tuple(r for r in records if r.kind in ("root", "intermediate"))
    own_active = [
        r for r in x509_records if r.kind == "intermediate" and r.state == "active" and is_own(r)
    ]
    signer = _newest(own_active)
    if signer is None:
        raise CaNotInitialisedError("the CA has no active intermediate; run 'citadel init'")
    partial = AuthoritySlots(
        signer=signer,
        root=signer,
        next_root=None,
        next_root_intermediate=None,
        next_intermediate=None,
        draining_roots=(),
        draining_intermediates=(),
        records=x509_records,
    )
    root = partial.root_of(signer)
    prepared_roots = [r for r in x509_records if r.kind == "root" and r.state == "prepared"]
    next_root = _newest(prepared_roots)
    prepared_intermediates = [
        r for r in x509_records if r.kind == "intermediate" and r.state == "prepared" and is_own(r)
    ]
    next_root_intermediate = (
        None
        if next_root is None
        else _newest(r for r in prepared_intermediates if partial.root_of(r).id == next_root.id)
    )
    next_intermediate = _newest(
        r for r in prepared_intermediates if partial.root_of(r).id == root.id
    )
    return AuthoritySlots(
        signer=signer,
        root=root,
        next_root=next_root,
        next_root_intermediate=next_root_intermediate,
        next_intermediate=next_intermediate,
        draining_roots=tuple(
            r for r in x509_records if r.kind == "root" and r.state == "active" and r.id != root.id
        ),
        draining_intermediates=tuple(r for r in own_active if r.id != signer.id),
        records=x509_records,
    )
