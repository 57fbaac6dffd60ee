from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegistrationEntry(_message.Message):
    __slots__ = ("entry_id", "spiffe_id", "parent_id", "selectors", "ttl_seconds", "dns_names", "revision", "hint")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    SPIFFE_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    SELECTORS_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DNS_NAMES_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    HINT_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    spiffe_id: str
    parent_id: str
    selectors: _containers.RepeatedScalarFieldContainer[str]
    ttl_seconds: int
    dns_names: _containers.RepeatedScalarFieldContainer[str]
    revision: int
    hint: str
    def __init__(self, entry_id: _Optional[str] = ..., spiffe_id: _Optional[str] = ..., parent_id: _Optional[str] = ..., selectors: _Optional[_Iterable[str]] = ..., ttl_seconds: _Optional[int] = ..., dns_names: _Optional[_Iterable[str]] = ..., revision: _Optional[int] = ..., hint: _Optional[str] = ...) -> None: ...

class EntryTombstone(_message.Message):
    __slots__ = ("entry_id", "revision")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    revision: int
    def __init__(self, entry_id: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...

class SyncEntriesRequest(_message.Message):
    __slots__ = ("since_revision",)
    SINCE_REVISION_FIELD_NUMBER: _ClassVar[int]
    since_revision: int
    def __init__(self, since_revision: _Optional[int] = ...) -> None: ...

class SyncEntriesResponse(_message.Message):
    __slots__ = ("entries", "tombstones", "revision", "full")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    TOMBSTONES_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[RegistrationEntry]
    tombstones: _containers.RepeatedCompositeFieldContainer[EntryTombstone]
    revision: int
    full: bool
    def __init__(self, entries: _Optional[_Iterable[_Union[RegistrationEntry, _Mapping]]] = ..., tombstones: _Optional[_Iterable[_Union[EntryTombstone, _Mapping]]] = ..., revision: _Optional[int] = ..., full: _Optional[bool] = ...) -> None: ...

class ItemStatus(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class X509SVIDRequest(_message.Message):
    __slots__ = ("entry_id", "csr")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    CSR_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    csr: bytes
    def __init__(self, entry_id: _Optional[str] = ..., csr: _Optional[bytes] = ...) -> None: ...

class BatchNewX509SVIDRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[X509SVIDRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[X509SVIDRequest, _Mapping]]] = ...) -> None: ...

class X509SVIDResult(_message.Message):
    __slots__ = ("entry_id", "cert_chain", "status")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    CERT_CHAIN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    cert_chain: _containers.RepeatedScalarFieldContainer[bytes]
    status: ItemStatus
    def __init__(self, entry_id: _Optional[str] = ..., cert_chain: _Optional[_Iterable[bytes]] = ..., status: _Optional[_Union[ItemStatus, _Mapping]] = ...) -> None: ...

class BatchNewX509SVIDResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[X509SVIDResult]
    def __init__(self, results: _Optional[_Iterable[_Union[X509SVIDResult, _Mapping]]] = ...) -> None: ...

class NewJWTSVIDRequest(_message.Message):
    __slots__ = ("entry_id", "spiffe_id", "audiences")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    SPIFFE_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIENCES_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    spiffe_id: str
    audiences: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, entry_id: _Optional[str] = ..., spiffe_id: _Optional[str] = ..., audiences: _Optional[_Iterable[str]] = ...) -> None: ...

class NewJWTSVIDResponse(_message.Message):
    __slots__ = ("token", "expires_at", "spiffe_id")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    SPIFFE_ID_FIELD_NUMBER: _ClassVar[int]
    token: str
    expires_at: int
    spiffe_id: str
    def __init__(self, token: _Optional[str] = ..., expires_at: _Optional[int] = ..., spiffe_id: _Optional[str] = ...) -> None: ...

class GetBundleRequest(_message.Message):
    __slots__ = ("acknowledged_bundle_version", "known_state")
    ACKNOWLEDGED_BUNDLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    KNOWN_STATE_FIELD_NUMBER: _ClassVar[int]
    acknowledged_bundle_version: str
    known_state: str
    def __init__(self, acknowledged_bundle_version: _Optional[str] = ..., known_state: _Optional[str] = ...) -> None: ...

class GetBundleResponse(_message.Message):
    __slots__ = ("trust_domain", "spiffe_bundle_json", "crls", "bundle_version", "state", "unchanged")
    TRUST_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    SPIFFE_BUNDLE_JSON_FIELD_NUMBER: _ClassVar[int]
    CRLS_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    trust_domain: str
    spiffe_bundle_json: str
    crls: _containers.RepeatedScalarFieldContainer[bytes]
    bundle_version: str
    state: str
    unchanged: bool
    def __init__(self, trust_domain: _Optional[str] = ..., spiffe_bundle_json: _Optional[str] = ..., crls: _Optional[_Iterable[bytes]] = ..., bundle_version: _Optional[str] = ..., state: _Optional[str] = ..., unchanged: _Optional[bool] = ...) -> None: ...
