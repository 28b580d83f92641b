"""The face analyzer: loads the models once and analyses many images.

Pipeline per image: decode (EXIF-corrected RGB) -> detect (CenterFace, planned passes) ->
face mesh + iris on each face crop -> named landmarks, head pose -> quality -> :class:`Faces`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from mien.analyzers import attributes
from mien.analyzers.attributes.base import FaceContext
from mien.analyzers.head_pose import head_pose_from_mesh
from mien.analyzers.quality import face_quality
from mien.detect.detections import Detections
from mien.detect.detector import DetectionPlan, FaceDetector
from mien.errors import MienError
from mien.landmarks import topology as tp
from mien.landmarks.mesh import FaceMesher
from mien.media.image import DecodedImage, ImageLimits, load_image
from mien.options import AnalyzerOptions
from mien.types import MESH_POINTS, AttributeColumn, ErrorInfo, Faces, ImageResult, ModelInfo

ImageSource = str | os.PathLike[str] | bytes | npt.NDArray[Any] | DecodedImage | Any


class FaceAnalyzer:
    """Analyses still images; create once, reuse for many images.

    Model files are verified against their model cards when the analyzer is created. One
    analyzer may be used from several threads at once (the detector session is thread-safe and
    each thread gets its own mesh interpreters) and it pickles by its options, so it can be sent
    to worker processes, where it reloads its models.
    """

    def __init__(self, options: AnalyzerOptions | None = None, **overrides: Any) -> None:
        if options is None:
            options = AnalyzerOptions(**overrides)
        elif overrides:
            from dataclasses import replace

            options = replace(options, **overrides)
        self.options = options
        self._detector = FaceDetector(num_threads=options.num_threads, device=options.device)
        self._mesher = FaceMesher() if options.needs_mesh else None
        self._attributes = attributes.create(options.attributes)
        self._plan = DetectionPlan.for_options(options)
        self._limits = ImageLimits(max_pixels=options.max_pixels)
        models = [self._detector.model.card.info]
        if self._mesher is not None:
            models += [self._mesher.mesh_card.info, self._mesher.iris_card.info]
        for attr in self._attributes:
            models += [m for m in attr.models if m not in models]
        self.models: tuple[ModelInfo, ...] = tuple(models)

    def __reduce__(self) -> tuple[Any, ...]:
        return (FaceAnalyzer, (self.options,))

    # -- public API -------------------------------------------------------------------------

    def analyze(
        self,
        image: ImageSource,
        *,
        name: str | None = None,
        on_error: Literal["raise", "record"] = "raise",
    ) -> ImageResult:
        """Analyse one image (a path, encoded bytes, an RGB array or a PIL image).

        With ``on_error="raise"`` (the default) a file that cannot be read raises a
        :class:`mien.errors.MediaError`; with ``"record"`` the result carries the error instead
        (that one, or any other :class:`mien.errors.MienError` raised for this input).
        """
        source = name if name is not None else _source_name(image)
        try:
            decoded = (
                image
                if isinstance(image, DecodedImage)
                else load_image(image, name=name, limits=self._limits)
            )
            faces = self.analyze_array(decoded.rgb)
        except MienError as exc:
            if on_error == "raise":
                raise
            return ImageResult(
                source=source,
                width=0,
                height=0,
                faces=None,
                models=self.models,
                error=ErrorInfo(exc.code, exc.message),
            )
        h, w = decoded.rgb.shape[:2]
        return ImageResult(
            source=decoded.source if name is None else name,
            width=int(w),
            height=int(h),
            faces=faces,
            models=self.models,
        )

    def analyze_many(self, images: Iterable[ImageSource]) -> Iterator[ImageResult]:
        """Analyse images one by one; an unreadable one yields a result with an ``error``."""
        for image in images:
            yield self.analyze(image, on_error="record")

    def analyze_array(self, rgb: npt.NDArray[np.uint8]) -> Faces:
        """Analyse an (H, W, 3) uint8 RGB array already oriented upright."""
        return self.describe(rgb, self._detector.detect(rgb, self._plan))

    @property
    def detector(self) -> FaceDetector:
        """The loaded face detector (for callers with a detection plan of their own, e.g. video)."""
        return self._detector

    def describe(self, rgb: npt.NDArray[np.uint8], det: Detections) -> Faces:
        """Everything but detection: mesh, landmarks, pose, attributes and quality of the faces
        ``det`` found in ``rgb`` (the second half of :meth:`analyze_array`)."""
        feats = set(self.options.features)
        n = len(det)
        landmarks = det.points.copy()
        mesh = np.full((n, MESH_POINTS, 3), np.nan, np.float32)
        has_mesh = np.zeros(n, bool)
        if self._mesher is not None:
            sizes = np.maximum(det.boxes[:, 2] - det.boxes[:, 0], det.boxes[:, 3] - det.boxes[:, 1])
            for i in np.nonzero(sizes >= self.options.mesh_min_face)[0]:
                m = self._mesher.mesh(rgb, det.boxes[i], det.points[i])
                mesh[i] = m.points
                has_mesh[i] = True
                landmarks[i] = m.points[
                    [
                        tp.RIGHT_IRIS_CENTER,
                        tp.LEFT_IRIS_CENTER,
                        tp.NOSE_TIP,
                        tp.MOUTH_RIGHT,
                        tp.MOUTH_LEFT,
                    ],
                    :2,
                ]
        head_pose = np.full((n, 3), np.nan, np.float32)
        for i in np.nonzero(has_mesh)[0]:
            head_pose[i] = head_pose_from_mesh(mesh[i])
        want_lm = "landmarks" in feats
        quality = (
            face_quality(rgb, det.boxes, landmarks if want_lm or self._mesher else None)
            if "quality" in feats
            else None
        )
        attrs: dict[str, AttributeColumn] = {}
        if self._attributes:
            ctx = FaceContext(
                rgb=rgb, boxes=det.boxes, landmarks=landmarks, mesh=mesh, head_pose=head_pose
            )
            if quality is not None:  # the blur gate reads the same sharpness: computed once
                ctx.known_sharpness(quality["sharpness"])
            attrs = {a.name: a(ctx) for a in self._attributes}
        return Faces(
            boxes=det.boxes,
            scores=np.clip(det.scores, 0.0, 1.0),
            landmarks=landmarks if want_lm else None,
            head_pose=head_pose if "head_pose" in feats else None,
            mesh=mesh if "mesh" in feats else None,
            quality=quality,
            attributes=attrs,
        )


def _source_name(image: object) -> str:
    if isinstance(image, DecodedImage):
        return image.source
    if isinstance(image, str | os.PathLike):
        return os.fspath(image)
    if isinstance(image, bytes | bytearray | memoryview):
        return "<bytes>"
    if isinstance(image, np.ndarray):
        return "<array>"
    return "<image>"


def analyze(
    image: ImageSource, features: str | Iterable[str] | None = None, **options: Any
) -> ImageResult:
    """Analyse one image with a one-off analyzer; for many images reuse a :class:`FaceAnalyzer`."""
    if features is not None:
        options["features"] = features
    return FaceAnalyzer(AnalyzerOptions(**options)).analyze(image)
