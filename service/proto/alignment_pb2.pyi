from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Encoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENCODING_UNSPECIFIED: _ClassVar[Encoding]
    ENCODING_PNG: _ClassVar[Encoding]
    ENCODING_JPEG: _ClassVar[Encoding]
    ENCODING_RAW: _ClassVar[Encoding]
    ENCODING_NONE: _ClassVar[Encoding]

class Interpolation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INTERPOLATION_UNSPECIFIED: _ClassVar[Interpolation]
    INTERPOLATION_NEAREST: _ClassVar[Interpolation]
    INTERPOLATION_LINEAR: _ClassVar[Interpolation]
    INTERPOLATION_CUBIC: _ClassVar[Interpolation]
    INTERPOLATION_AREA: _ClassVar[Interpolation]
    INTERPOLATION_LANCZOS4: _ClassVar[Interpolation]

class BorderMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BORDER_MODE_UNSPECIFIED: _ClassVar[BorderMode]
    BORDER_MODE_CONSTANT: _ClassVar[BorderMode]
    BORDER_MODE_REPLICATE: _ClassVar[BorderMode]
    BORDER_MODE_REFLECT: _ClassVar[BorderMode]
    BORDER_MODE_WRAP: _ClassVar[BorderMode]
ENCODING_UNSPECIFIED: Encoding
ENCODING_PNG: Encoding
ENCODING_JPEG: Encoding
ENCODING_RAW: Encoding
ENCODING_NONE: Encoding
INTERPOLATION_UNSPECIFIED: Interpolation
INTERPOLATION_NEAREST: Interpolation
INTERPOLATION_LINEAR: Interpolation
INTERPOLATION_CUBIC: Interpolation
INTERPOLATION_AREA: Interpolation
INTERPOLATION_LANCZOS4: Interpolation
BORDER_MODE_UNSPECIFIED: BorderMode
BORDER_MODE_CONSTANT: BorderMode
BORDER_MODE_REPLICATE: BorderMode
BORDER_MODE_REFLECT: BorderMode
BORDER_MODE_WRAP: BorderMode

class RawImage(_message.Message):
    __slots__ = ("height", "width", "channels", "dtype", "data")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    height: int
    width: int
    channels: int
    dtype: str
    data: bytes
    def __init__(self, height: _Optional[int] = ..., width: _Optional[int] = ..., channels: _Optional[int] = ..., dtype: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class OutputOptions(_message.Message):
    __slots__ = ("height", "width", "encoding", "jpeg_quality", "interpolation", "border_mode", "fill")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    JPEG_QUALITY_FIELD_NUMBER: _ClassVar[int]
    INTERPOLATION_FIELD_NUMBER: _ClassVar[int]
    BORDER_MODE_FIELD_NUMBER: _ClassVar[int]
    FILL_FIELD_NUMBER: _ClassVar[int]
    height: int
    width: int
    encoding: Encoding
    jpeg_quality: int
    interpolation: Interpolation
    border_mode: BorderMode
    fill: float
    def __init__(self, height: _Optional[int] = ..., width: _Optional[int] = ..., encoding: _Optional[_Union[Encoding, str]] = ..., jpeg_quality: _Optional[int] = ..., interpolation: _Optional[_Union[Interpolation, str]] = ..., border_mode: _Optional[_Union[BorderMode, str]] = ..., fill: _Optional[float] = ...) -> None: ...

class AlignRequest(_message.Message):
    __slots__ = ("id", "encoded", "raw", "model", "models", "output", "min_confidence")
    ID_FIELD_NUMBER: _ClassVar[int]
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    encoded: bytes
    raw: RawImage
    model: str
    models: _containers.RepeatedScalarFieldContainer[str]
    output: OutputOptions
    min_confidence: float
    def __init__(self, id: _Optional[str] = ..., encoded: _Optional[bytes] = ..., raw: _Optional[_Union[RawImage, _Mapping]] = ..., model: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., output: _Optional[_Union[OutputOptions, _Mapping]] = ..., min_confidence: _Optional[float] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("encoding", "data", "height", "width", "channels")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    encoding: Encoding
    data: bytes
    height: int
    width: int
    channels: int
    def __init__(self, encoding: _Optional[_Union[Encoding, str]] = ..., data: _Optional[bytes] = ..., height: _Optional[int] = ..., width: _Optional[int] = ..., channels: _Optional[int] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("decode_ms", "resize_ms", "queue_ms", "localise_ms", "warp_ms", "encode_ms", "total_ms")
    DECODE_MS_FIELD_NUMBER: _ClassVar[int]
    RESIZE_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    LOCALISE_MS_FIELD_NUMBER: _ClassVar[int]
    WARP_MS_FIELD_NUMBER: _ClassVar[int]
    ENCODE_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    decode_ms: float
    resize_ms: float
    queue_ms: float
    localise_ms: float
    warp_ms: float
    encode_ms: float
    total_ms: float
    def __init__(self, decode_ms: _Optional[float] = ..., resize_ms: _Optional[float] = ..., queue_ms: _Optional[float] = ..., localise_ms: _Optional[float] = ..., warp_ms: _Optional[float] = ..., encode_ms: _Optional[float] = ..., total_ms: _Optional[float] = ...) -> None: ...

class Stage(_message.Message):
    __slots__ = ("model", "family", "theta", "matrix", "angle_degrees", "page_corners", "out_height", "out_width", "corner_confidence", "read_again")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    THETA_FIELD_NUMBER: _ClassVar[int]
    MATRIX_FIELD_NUMBER: _ClassVar[int]
    ANGLE_DEGREES_FIELD_NUMBER: _ClassVar[int]
    PAGE_CORNERS_FIELD_NUMBER: _ClassVar[int]
    OUT_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    OUT_WIDTH_FIELD_NUMBER: _ClassVar[int]
    CORNER_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    READ_AGAIN_FIELD_NUMBER: _ClassVar[int]
    model: str
    family: str
    theta: _containers.RepeatedScalarFieldContainer[float]
    matrix: _containers.RepeatedScalarFieldContainer[float]
    angle_degrees: float
    page_corners: _containers.RepeatedCompositeFieldContainer[Point]
    out_height: int
    out_width: int
    corner_confidence: float
    read_again: bool
    def __init__(self, model: _Optional[str] = ..., family: _Optional[str] = ..., theta: _Optional[_Iterable[float]] = ..., matrix: _Optional[_Iterable[float]] = ..., angle_degrees: _Optional[float] = ..., page_corners: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., out_height: _Optional[int] = ..., out_width: _Optional[int] = ..., corner_confidence: _Optional[float] = ..., read_again: _Optional[bool] = ...) -> None: ...

class AlignResponse(_message.Message):
    __slots__ = ("id", "model", "family", "theta", "matrix", "angle_degrees", "page_corners", "rectified", "timings", "stages", "input_height", "input_width", "corner_confidence", "orientation_confidence", "skew_confidence", "review")
    ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    THETA_FIELD_NUMBER: _ClassVar[int]
    MATRIX_FIELD_NUMBER: _ClassVar[int]
    ANGLE_DEGREES_FIELD_NUMBER: _ClassVar[int]
    PAGE_CORNERS_FIELD_NUMBER: _ClassVar[int]
    RECTIFIED_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    INPUT_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    INPUT_WIDTH_FIELD_NUMBER: _ClassVar[int]
    CORNER_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    ORIENTATION_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    SKEW_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    REVIEW_FIELD_NUMBER: _ClassVar[int]
    id: str
    model: str
    family: str
    theta: _containers.RepeatedScalarFieldContainer[float]
    matrix: _containers.RepeatedScalarFieldContainer[float]
    angle_degrees: float
    page_corners: _containers.RepeatedCompositeFieldContainer[Point]
    rectified: Image
    timings: Timings
    stages: _containers.RepeatedCompositeFieldContainer[Stage]
    input_height: int
    input_width: int
    corner_confidence: float
    orientation_confidence: float
    skew_confidence: float
    review: bool
    def __init__(self, id: _Optional[str] = ..., model: _Optional[str] = ..., family: _Optional[str] = ..., theta: _Optional[_Iterable[float]] = ..., matrix: _Optional[_Iterable[float]] = ..., angle_degrees: _Optional[float] = ..., page_corners: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., rectified: _Optional[_Union[Image, _Mapping]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., stages: _Optional[_Iterable[_Union[Stage, _Mapping]]] = ..., input_height: _Optional[int] = ..., input_width: _Optional[int] = ..., corner_confidence: _Optional[float] = ..., orientation_confidence: _Optional[float] = ..., skew_confidence: _Optional[float] = ..., review: _Optional[bool] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ("code", "code_name", "message", "retry_after_ms")
    CODE_FIELD_NUMBER: _ClassVar[int]
    CODE_NAME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    code: int
    code_name: str
    message: str
    retry_after_ms: int
    def __init__(self, code: _Optional[int] = ..., code_name: _Optional[str] = ..., message: _Optional[str] = ..., retry_after_ms: _Optional[int] = ...) -> None: ...

class AlignStreamResponse(_message.Message):
    __slots__ = ("id", "result", "error")
    ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    result: AlignResponse
    error: ItemError
    def __init__(self, id: _Optional[str] = ..., result: _Optional[_Union[AlignResponse, _Mapping]] = ..., error: _Optional[_Union[ItemError, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "family", "input_size", "input_channels", "provider", "has_warper", "preprocess", "warp_backend", "chain_role", "postprocess", "contract_version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    INPUT_SIZE_FIELD_NUMBER: _ClassVar[int]
    INPUT_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    HAS_WARPER_FIELD_NUMBER: _ClassVar[int]
    PREPROCESS_FIELD_NUMBER: _ClassVar[int]
    WARP_BACKEND_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ROLE_FIELD_NUMBER: _ClassVar[int]
    POSTPROCESS_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    family: str
    input_size: int
    input_channels: int
    provider: str
    has_warper: bool
    preprocess: str
    warp_backend: str
    chain_role: str
    postprocess: _containers.RepeatedScalarFieldContainer[str]
    contract_version: int
    def __init__(self, name: _Optional[str] = ..., family: _Optional[str] = ..., input_size: _Optional[int] = ..., input_channels: _Optional[int] = ..., provider: _Optional[str] = ..., has_warper: _Optional[bool] = ..., preprocess: _Optional[str] = ..., warp_backend: _Optional[str] = ..., chain_role: _Optional[str] = ..., postprocess: _Optional[_Iterable[str]] = ..., contract_version: _Optional[int] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "default_model")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    default_model: str
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., default_model: _Optional[str] = ...) -> None: ...
