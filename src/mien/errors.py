"""The exception hierarchy of mien.

Every error mien raises on purpose derives from :class:`MienError` and carries a stable
``code`` (the same string the CLI prints and the HTTP API puts in its problem+json body).
"""

from __future__ import annotations


class MienError(Exception):
    """Base class of every error mien raises on purpose."""

    code: str = "MienError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class RefusedAttributeError(MienError, ValueError):
    """Raised when a caller asks mien to infer who a person is or what group they belong to."""

    code = "RefusedAttribute"

    def __init__(self, names: list[str], message: str) -> None:
        super().__init__(message)
        self.names = names


class UnknownFeatureError(MienError, ValueError):
    """A feature name that mien does not know (and that is not a refused one)."""

    code = "UnknownFeature"


class MediaError(MienError):
    """Base class of errors about one input file; a batch records it and goes on."""

    code = "MediaError"


class InvalidImageError(MediaError):
    """The input could not be decoded as an image (corrupt, truncated, not an image)."""

    code = "InvalidImage"


class UnsupportedMediaError(MediaError):
    """The input is a kind of file mien does not read (e.g. a PDF, or a video in image mode)."""

    code = "UnsupportedMedia"


class ImageTooLargeError(MediaError):
    """The image has more pixels or bytes than allowed (also decompression bombs)."""

    code = "ImageTooLarge"


class SourceNotFoundError(MediaError):
    """The input path does not exist or cannot be read."""

    code = "NotFound"


class ModelIntegrityError(MienError):
    """A vendored model file is missing or its sha256 does not match its model card."""

    code = "ModelIntegrity"


class RuleError(MienError, ValueError):
    """A rule file or rule expression that cannot be used (syntax, unknown name, limits).

    ``line`` and ``column`` (1-based) locate the problem in the YAML text when known.
    """

    code = "InvalidRules"

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


class InvalidVideoError(MediaError):
    """The input could not be decoded as a video (corrupt, truncated, not a video, no frames)."""

    code = "InvalidVideo"


class NoVideoStreamError(InvalidVideoError):
    """The file is a media container without a video stream (e.g. audio only)."""

    code = "NoVideoStream"


class VideoTooLargeError(MediaError):
    """The video's frames are larger than allowed (width, height or pixels per frame)."""

    code = "VideoTooLarge"


class EmptyVideoError(InvalidVideoError):
    """The video stream holds no decodable frame."""

    code = "EmptyVideo"


class SuspectFramesError(MediaError):
    """Redaction stopped because a frame may show an uncovered face and the caller chose
    ``on_suspect="fail"`` (docs/redaction.md, "Fail closed"); nothing was written."""

    code = "SuspectFrames"


class MissingExtraError(MienError):
    """A command or option needs an optional extra (``pip install 'mien[...]'``) that is absent.

    ``extra`` names the extra (``service``, ``parquet``, ``ray``); ``module`` the Python module
    that could not be imported.
    """

    code = "MissingExtra"

    def __init__(self, message: str, extra: str, module: str) -> None:
        super().__init__(message)
        self.extra = extra
        self.module = module
