"""The exception hierarchy of mien: every error mien raises on purpose, in this one module.

Every error derives from :class:`MienError` and carries a stable ``code`` (the same string the
CLI prints and the HTTP API puts in its problem+json body), the ``http_status`` the service
answers it with and a short ``title`` (RFC 9457's summary of the problem type). The three are
given in the class statement (``class X(MienError, code="X", http_status=422, title="...")``):
a class without a ``code`` does not import, so no error goes out without one. An error the
service has no better answer for keeps the base's 400 and its code as title.
"""

from __future__ import annotations

from typing import Any, ClassVar


class MienError(Exception):
    """Base class of every error mien raises on purpose."""

    code: ClassVar[str] = "MienError"
    http_status: ClassVar[int] = 400
    title: ClassVar[str] = "MienError"

    def __init_subclass__(
        cls,
        *,
        code: str,
        http_status: int | None = None,
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.code = code
        if http_status is not None:  # otherwise the parent's
            cls.http_status = http_status
        cls.title = code if title is None else title

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class RefusedAttributeError(
    MienError,
    ValueError,
    code="RefusedAttribute",
    http_status=422,
    title="Refused: mien does not infer identity or group membership",
):
    """Raised when a caller asks mien to infer who a person is or what group they belong to."""

    def __init__(self, names: list[str], message: str) -> None:
        super().__init__(message)
        self.names = names


class UnknownFeatureError(
    MienError, ValueError, code="UnknownFeature", http_status=422, title="Unknown feature"
):
    """A feature name that mien does not know (and that is not a refused one)."""


class ModelIntegrityError(
    MienError, code="ModelIntegrity", http_status=503, title="A model file failed verification"
):
    """A vendored model file is missing or its sha256 does not match its model card."""


class RuleError(MienError, ValueError, code="InvalidRules", http_status=422, title="Invalid rules"):
    """A rule file or rule expression that cannot be used (syntax, unknown name, limits).

    ``line`` and ``column`` (1-based) locate the problem in the YAML text when known.
    """

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


class MissingExtraError(MienError, code="MissingExtra"):
    """A command or option needs an optional extra (``pip install 'mien[...]'``) that is absent.

    ``extra`` names the extra (``service``, ``parquet``, ``ray``); ``module`` the Python module
    that could not be imported.
    """

    def __init__(self, message: str, extra: str, module: str) -> None:
        super().__init__(message)
        self.extra = extra
        self.module = module


class DeviceUnavailableError(
    MienError,
    code="DeviceUnavailable",
    http_status=503,
    title="The requested compute device is not available",
):
    """``device="cuda"`` was asked for, but onnxruntime cannot run on a CUDA GPU here (no
    CUDA provider in the installed onnxruntime, or the session did not get it). mien never falls
    back to the CPU silently: the caller asked for a GPU. ``device`` names what was asked for."""

    INSTALL = (
        "install the GPU build of onnxruntime in place of the CPU one "
        "(pip uninstall onnxruntime && pip install 'mien[cuda]'; the two must not both be "
        "installed), with an NVIDIA driver and the CUDA and cuDNN libraries it needs, "
        "or use --device cpu"
    )

    def __init__(self, device: str, reason: str) -> None:
        super().__init__(f"device {device!r} is not available: {reason}; {self.INSTALL}")
        self.device = device


# -- one input file: a batch records the error and goes on ---------------------------------


class MediaError(MienError, code="MediaError"):
    """Base class of errors about one input file; a batch records it and goes on."""


class InvalidImageError(MediaError, code="InvalidImage", http_status=422, title="Invalid image"):
    """The input could not be decoded as an image (corrupt, truncated, not an image)."""


class UnsupportedMediaError(
    MediaError, code="UnsupportedMedia", http_status=415, title="Unsupported media"
):
    """The input is a kind of file mien does not read (e.g. a PDF, or a video in image mode)."""


class ImageTooLargeError(MediaError, code="ImageTooLarge", http_status=413, title="Too large"):
    """The image has more pixels or bytes than allowed (also decompression bombs)."""


class SourceNotFoundError(MediaError, code="NotFound", http_status=404, title="Not found"):
    """The input path does not exist or cannot be read."""


class InvalidVideoError(MediaError, code="InvalidVideo"):
    """The input could not be decoded as a video (corrupt, truncated, not a video, no frames)."""


class NoVideoStreamError(InvalidVideoError, code="NoVideoStream"):
    """The file is a media container without a video stream (e.g. audio only)."""


class EmptyVideoError(InvalidVideoError, code="EmptyVideo"):
    """The video stream holds no decodable frame."""


class VideoTooLargeError(MediaError, code="VideoTooLarge"):
    """The video's frames are larger than allowed (width, height or pixels per frame)."""


class SuspectFramesError(MediaError, code="SuspectFrames"):
    """Redaction stopped because a frame may show an uncovered face and the caller chose
    ``on_suspect="fail"`` (docs/redaction.md, "Fail closed"); nothing was written."""


# -- outputs: mien cannot run (exit 3) -------------------------------------------------------


class OutputError(MienError, code="OutputError"):
    """The output path cannot be written (or mien's output rule refuses it:
    :func:`mien.media.write.check_output_path`)."""


class LiveOutputError(OutputError, code="OutputError"):
    """The redacted live stream could not be written (target unreachable, disk full...).

    A kind of :class:`OutputError` with the same code (a live ``error`` event says
    ``OutputError``, docs/output.md); the live session tells it apart to end with the reason
    ``output_error``."""


# -- batch jobs --------------------------------------------------------------------------------


class BatchInputError(MienError, code="BatchInput"):
    """The batch input (folder, glob or manifest) cannot be listed."""


class JobMismatchError(MienError, code="JobMismatch"):
    """The output folder holds a job with other parameters or other inputs."""


class JobLockedError(MienError, code="JobLocked"):
    """Another batch is running on the same output folder."""


class WorkerCrashedError(MienError, code="WorkerCrashed"):
    """Worker processes keep dying; the shards committed so far are kept."""


class RayUnavailableError(MienError, code="RayUnavailable"):
    """Ray cannot be started or joined (a missing ``ray`` extra is ``MissingExtraError``)."""


class RayJobError(MienError, code="RayJobFailed"):
    """The Ray job failed part-way (an actor died, the cluster went away)."""
