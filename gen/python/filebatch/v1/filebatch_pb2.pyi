from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
FILE_BATCH_STATUS_CANCELLED: FileBatchStatus
FILE_BATCH_STATUS_COMPLETED: FileBatchStatus
FILE_BATCH_STATUS_FAILED: FileBatchStatus
FILE_BATCH_STATUS_IN_PROGRESS: FileBatchStatus
FILE_BATCH_STATUS_UNSPECIFIED: FileBatchStatus

class CancelFileBatchRequest(_message.Message):
    __slots__ = ["batch_id", "vector_store_id"]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_STORE_ID_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    vector_store_id: str
    def __init__(self, vector_store_id: _Optional[str] = ..., batch_id: _Optional[str] = ...) -> None: ...

class FileCounts(_message.Message):
    __slots__ = ["cancelled", "completed", "failed", "in_progress", "total"]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    IN_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    cancelled: int
    completed: int
    failed: int
    in_progress: int
    total: int
    def __init__(self, in_progress: _Optional[int] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., cancelled: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class VectorStoreFileBatch(_message.Message):
    __slots__ = ["created_at", "file_counts", "id", "object", "status", "status_raw", "vector_store_id"]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FILE_COUNTS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_RAW_FIELD_NUMBER: _ClassVar[int]
    VECTOR_STORE_ID_FIELD_NUMBER: _ClassVar[int]
    created_at: int
    file_counts: FileCounts
    id: str
    object: str
    status: FileBatchStatus
    status_raw: str
    vector_store_id: str
    def __init__(self, id: _Optional[str] = ..., object: _Optional[str] = ..., created_at: _Optional[int] = ..., vector_store_id: _Optional[str] = ..., status: _Optional[_Union[FileBatchStatus, str]] = ..., file_counts: _Optional[_Union[FileCounts, _Mapping]] = ..., status_raw: _Optional[str] = ...) -> None: ...

class FileBatchStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
