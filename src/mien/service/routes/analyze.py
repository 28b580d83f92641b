"""``POST /v1/faces:analyze`` (the CLI's JSON for one image) and ``POST /v1/redact``."""

from __future__ import annotations

import importlib
import io
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from mien.features import check_refused
from mien.media.image import load_image
from mien.service.analysis import AnalysisParams, evaluate, image_record, parse_params
from mien.service.auth import require_key
from mien.service.problem import Problem, responses
from mien.service.routes.common import in_thread, state, upload_body
from mien.service.uploads import (
    Upload,
    form_files,
    form_text,
    is_multipart,
    read_form,
    read_raw,
    require_content,
)

router = APIRouter(tags=["analyze"])

_FIELDS = ("image", "file")
NAME_HELP = "the `source` label of a raw-body upload (default `<bytes>`; multipart: the file name)"


async def _one_upload(request: Request, name: str | None) -> tuple[Upload, dict[str, str]]:
    """The single uploaded image and any text fields of a multipart form."""
    texts: dict[str, str] = {}
    # never written to disk: the upload stays in memory (the body limit bounds it)
    in_memory = state(request).config.max_upload_bytes
    if is_multipart(request):
        form = await read_form(request, max_files=2, in_memory=in_memory)
        uploads = form_files(form, *_FIELDS)
        for key in form:
            value = form_text(form, key)
            if value is not None:
                texts[key] = value
    else:
        uploads = [await read_raw(request, name, in_memory=in_memory)]
    require_content(uploads)
    if len(uploads) != 1:
        raise Problem("BadRequest", "send exactly one image (field 'image')")
    return uploads[0], texts


def _merge(params: AnalysisParams, texts: dict[str, str], query: dict[str, Any]) -> AnalysisParams:
    """Form fields may carry the parameters too; they pass the same checks."""
    check_refused(k for k in texts if k not in (*_FIELDS, "features", "profile"))
    if not ({"features", "profile"} & texts.keys()):
        return params
    return parse_params(
        texts.get("features", query.get("features")),
        texts.get("profile", query.get("profile")),
        params.threshold,
        params.min_face,
        params.max_faces,
    )


@router.post(
    "/v1/faces:analyze",
    summary="Analyse one image; answers the same JSON object as `mien analyze`",
    openapi_extra=upload_body(
        {"image": {"type": "string", "format": "binary"}}, ["features", "profile"]
    ),
    responses=responses(400, 401, 413, 415, 422, 501),
)
async def analyze(
    request: Request,
    key_id: str = Depends(require_key),
    features: str | None = Query(None, description="comma-separated feature names, or 'all'"),
    profile: str | None = Query(None, description="a rules profile, e.g. 'id-photo'"),
    threshold: float | None = Query(None, ge=0.0, le=1.0),
    min_face: float | None = Query(None, ge=0.0),
    max_faces: int | None = Query(None, ge=0),
    name: str | None = Query(None, max_length=200, description=NAME_HELP),
) -> dict[str, Any]:
    params = await in_thread(parse_params, features, profile, threshold, min_face, max_faces)
    upload, texts = await _one_upload(request, name)
    params = await in_thread(_merge, params, texts, {"features": features, "profile": profile})
    st = state(request)

    def work() -> dict[str, Any]:
        analyzer = st.analyzers.analyzer(params)
        ruleset = st.analyzers.ruleset(params.profile)
        with st.analysis_slots:  # bounded: many large uploads at once must not exhaust memory
            result = analyzer.analyze(upload.read(), name=upload.name)  # MediaError -> problem
        return image_record(result, params, evaluate(ruleset, result))

    out: dict[str, Any] = await in_thread(work)
    return out


_REDACT_FORMATS = {
    "jpeg": ("JPEG", "image/jpeg"),
    "png": ("PNG", "image/png"),
    "webp": ("WEBP", "image/webp"),
}


@router.post(
    "/v1/redact",
    summary="Cover every face of one image; answers the redacted picture (no metadata)",
    openapi_extra=upload_body({"image": {"type": "string", "format": "binary"}}, []),
    responses={
        200: {
            "content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}},
            "description": "the redacted picture; X-Mien-Faces-Covered says how many faces",
        },
        **responses(400, 401, 413, 415, 422, 501),
    },
    response_class=Response,
)
async def redact(
    request: Request,
    key_id: str = Depends(require_key),
    method: str = Query("blur", pattern="^(blur|pixelate|fill)$"),
    shape: str = Query("ellipse", pattern="^(ellipse|box)$"),
    scale: float = Query(1.3, ge=1.0, le=4.0),
    color: str | None = Query(None, description="fill colour, #rrggbb or r,g,b"),
    threshold: float | None = Query(None, ge=0.0, le=1.0),
    format: str | None = Query(None, pattern="^(jpeg|png|webp)$"),
    name: str | None = Query(None, max_length=200, description=NAME_HELP),
) -> Response:
    try:
        importlib.import_module("mien.redact.image")
        from mien.redact.options import RedactOptions, parse_color
    except ImportError:
        raise Problem(
            "NotAvailable", "redaction (mien.redact) is not part of this installation"
        ) from None
    try:
        opts = RedactOptions(
            method=method,  # type: ignore[arg-type]
            shape=shape,  # type: ignore[arg-type]
            scale=scale,
            color=parse_color(color) if color else (0, 0, 0),
        )
    except ValueError as exc:
        raise Problem("InvalidParameter", str(exc)) from None
    upload, _ = await _one_upload(request, name)
    st = state(request)

    def work() -> tuple[bytes, str, int]:
        with st.analysis_slots:
            return _redact(upload, threshold, opts, format)

    data, mime, covered = await in_thread(work)
    return Response(data, media_type=mime, headers={"X-Mien-Faces-Covered": str(covered)})


def _redact(
    upload: Upload, threshold: float | None, opts: Any, format: str | None
) -> tuple[bytes, str, int]:
    from PIL import Image

    from mien.options import AnalyzerOptions
    from mien.redact.image import redact_array

    decoded = load_image(upload.read(), name=upload.name)
    an_opts = (
        None if threshold is None else AnalyzerOptions(features=("detection",), threshold=threshold)
    )
    out, report = redact_array(
        decoded.rgb, analyzer_options=an_opts, options=opts, name=upload.name
    )
    fmt = format or {"JPEG": "jpeg", "WEBP": "webp"}.get(decoded.format or "", "png")
    pil_fmt, mime = _REDACT_FORMATS[fmt]
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, pil_fmt, **({"quality": 92} if fmt != "png" else {}))
    return buf.getvalue(), mime, len(report.regions)
