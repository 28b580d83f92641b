"""The work done for one batch item, in whichever process runs it (local worker or Ray actor).

A :class:`Worker` loads the models once and turns a :class:`BatchItem` into one JSON-ready
record. It never raises for a bad input: the record then carries ``error`` (code + message),
so the rest of the batch goes on. Its thread budget is applied before the models load:
onnxruntime's intra-op threads through ``AnalyzerOptions.num_threads``, OpenCV's through
``cv2.setNumThreads``, and ``OMP_NUM_THREADS`` & co. for libraries that read them when their
pool starts (the local engine also puts them in the environment its workers start with).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Any, Literal

from mien.batch.inputs import BatchItem
from mien.options import AnalyzerOptions

Task = Literal["analyze", "redact"]

#: Environment variables that cap the thread pools of the numeric libraries a worker loads.
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")

_WRITABLE = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs, picklable: the task, analyzer options and thread budget."""

    task: Task
    analyzer: AnalyzerOptions
    threads: int
    out_dir: str
    redact: Any = None  # mien.redact.RedactOptions for task "redact"
    #: task "redact": write to ``out_dir/<key>`` (``mien redact DIR``'s layout, the key being the
    #: output's relative path) instead of the job folder's ``out_dir/redacted/<key's path>``
    redact_tree: bool = False
    keep_metadata: bool = False

    @property
    def include_mesh(self) -> bool:
        return "mesh" in self.analyzer.features


def limit_threads(threads: int) -> None:
    """Cap the thread pools of this process (call before the models are loaded)."""
    for name in THREAD_ENV:
        os.environ[name] = str(threads)


def redacted_relpath(key: str) -> str:
    """Where under ``OUT_DIR/redacted`` the redacted copy of ``key`` goes (never outside it)."""
    text = key.split("://", 1)[1] if "://" in key else key
    parts = [p for p in PurePosixPath(text.replace("\\", "/")).parts if p not in ("/", "..", ".")]
    rel = PurePosixPath(*parts) if parts else PurePosixPath("image")
    if rel.suffix.lower() not in _WRITABLE:
        rel = rel.with_name(rel.name + ".png")
    return rel.as_posix()


class Worker:
    """Holds the loaded models of one process and processes items one by one."""

    def __init__(self, config: WorkerConfig) -> None:
        limit_threads(config.threads)
        import cv2

        cv2.setNumThreads(config.threads)
        from mien.analyzer import FaceAnalyzer

        self.config = config
        self.analyzer: FaceAnalyzer | None = None
        if config.task == "redact":
            from mien.redact.image import redaction_analyzer_options, redaction_models

            # redact_image shares one detector per thread count and device: loaded here, once
            config = replace(config, analyzer=redaction_analyzer_options(config.analyzer))
            self.config = config
            models = redaction_models(config.analyzer)
        else:
            self.analyzer = FaceAnalyzer(config.analyzer)
            models = self.analyzer.models
        self._models = [m.to_dict() for m in models]

    def process(self, item: BatchItem) -> dict[str, Any]:
        """The record of one item (``key`` first), with ``error`` when it could not be done."""
        from mien.errors import MienError
        from mien.media.regular import special_kind

        if item.path is None:
            return self._error(item, "UnsupportedMedia", item.problem or "cannot be read")
        try:
            mode = os.stat(item.path).st_mode
        except OSError:
            mode = None  # missing or unreadable: the loader reports it (NotFound)
        if mode is not None and not stat.S_ISREG(mode):
            # a FIFO, socket or device named in a manifest would block or never end
            kind = special_kind(mode)
            what = "a folder" if kind == "folder" else f"not a regular file ({kind})"
            return self._error(item, "UnsupportedMedia", f"{item.path}: {what}")
        try:
            if self.analyzer is None:
                return self._redact(item, item.path)
            result = self.analyzer.analyze(item.path, on_error="record")
            return {"key": item.key, **result.to_dict(include_mesh=self.config.include_mesh)}
        except MienError as exc:
            return self._error(item, exc.code, exc.message)
        except MemoryError:
            return self._error(item, "OutOfMemory", "not enough memory to process this file")
        except Exception as exc:  # a bug or a hostile file: record it, keep the batch going
            return self._error(item, "InternalError", f"{type(exc).__name__}: {exc}")

    def _error(self, item: BatchItem, code: str, message: str) -> dict[str, Any]:
        return {
            "key": item.key,
            "source": item.path or item.key,
            "width": 0,
            "height": 0,
            "models": self._models,
            "error": {"code": code, "message": message},
        }

    def _redact(self, item: BatchItem, path: str) -> dict[str, Any]:
        from mien.redact.image import redact_image

        parts = redacted_relpath(item.key).split("/")
        below = () if self.config.redact_tree else ("redacted",)
        target = os.path.join(self.config.out_dir, *below, *parts)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        report = redact_image(
            path,
            target,
            analyzer_options=self.config.analyzer,
            options=self.config.redact,
            keep_metadata=self.config.keep_metadata,
        )
        return {"key": item.key, **report.to_dict()}
