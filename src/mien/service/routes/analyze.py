"""``POST /v1/faces:analyze`` (the CLI's JSON for one image) and ``POST /v1/redact``."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from mien.features import check_refused
from mien.media.image import ImageLimits, probe_image
from mien.redact.options import RedactOptions, parse_color
from mien.service.analysis import AnalysisParams, parse_params
from mien.service.auth import require_key
from mien.service.problem import Problem, responses
from mien.service.routes.common import FEATURES, PROFILE, in_thread, upload_body
from mien.service.state import State
from mien.service.uploads import Upload, read_body, require_content

router = APIRouter(tags=["analyze"])

_FIELDS = ("image", "file")
NAME_HELP = "the `source` label of a raw-body upload (default `<bytes>`; multipart: the file name)"


async def _one_upload(
    request: Request, st: State, name: str | None
) -> tuple[Upload, dict[str, str]]:
    """The single uploaded image and any text fields of a multipart form."""
    # never written to disk: the upload stays in memory (the body limit bounds it)
    body = await read_body(
        request, _FIELDS, max_files=2, name=name, in_memory=st.config.max_upload_bytes
    )
    require_content(body.uploads)
    if len(body.uploads) != 1:
        raise Problem("BadRequest", "send exactly one image (field 'image')")
    return body.uploads[0], body.fields


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


_ERRORS = responses(400, 401, 413, 415, 422, 500, 501, 503)
_ERRORS[503]["headers"] = {
    "Retry-After": {
        "description": "seconds to wait before trying again (Overloaded, TimeBudgetExceeded)",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def _check_header(upload: Upload, max_pixels: int) -> None:
    """Refuse an over-budget picture from its header (nothing decoded, the body not read into
    memory: that happens once the request has an analysis slot)."""
    probe_image(upload.file, name=upload.name, limits=ImageLimits(max_pixels=max_pixels))


@router.post(
    "/v1/faces:analyze",
    summary="Analyse one image; answers the same JSON object as `mien analyze`",
    openapi_extra=upload_body(
        {"image": {"type": "string", "format": "binary"}}, ["features", "profile"]
    ),
    responses=_ERRORS,
)
async def analyze(
    request: Request,
    st: State,
    key_id: str = Depends(require_key),
    features: str | None = FEATURES,
    profile: str | None = PROFILE,
    threshold: float | None = Query(None, ge=0.0, le=1.0),
    min_face: float | None = Query(None, ge=0.0),
    max_faces: int | None = Query(None, ge=0),
    name: str | None = Query(None, max_length=200, description=NAME_HELP),
) -> dict[str, Any]:
    params = await in_thread(parse_params, features, profile, threshold, min_face, max_faces)
    async with st.slots.admission():  # 503 Overloaded before the body is read when full
        upload, texts = await _one_upload(request, st, name)
        params = await in_thread(_merge, params, texts, {"features": features, "profile": profile})
        await in_thread(_check_header, upload, st.config.max_pixels)
        # the picture is decoded and analysed in a slot process, stopped on disconnect/timeout
        out: dict[str, Any] = await st.slots.run(
            request, "analyze", lambda: (params.to_json(), upload.read(), upload.name)
        )
    return out


@router.post(
    "/v1/redact",
    summary="Cover every face of one image; answers the redacted picture (no metadata)",
    openapi_extra=upload_body({"image": {"type": "string", "format": "binary"}}, []),
    responses={
        200: {
            "content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}},
            "description": "the redacted picture; X-Mien-Faces-Covered says how many faces",
        },
        **_ERRORS,
    },
    response_class=Response,
)
async def redact(
    request: Request,
    st: State,
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
        opts = RedactOptions(
            method=method,  # type: ignore[arg-type]
            shape=shape,  # type: ignore[arg-type]
            scale=scale,
            color=parse_color(color) if color else (0, 0, 0),
        )
    except ValueError as exc:
        raise Problem("InvalidParameter", str(exc)) from None
    async with st.slots.admission():
        upload, _ = await _one_upload(request, st, name)
        await in_thread(_check_header, upload, st.config.max_pixels)
        fields = dataclasses.asdict(opts)
        out: tuple[bytes, str, int] = await st.slots.run(
            request, "redact", lambda: (threshold, fields, format, upload.read(), upload.name)
        )
    body, mime, covered = out
    return Response(body, media_type=mime, headers={"X-Mien-Faces-Covered": str(covered)})
