"""Reading uploads: a raw body or multipart files, within the size limit, never trusting names.

:class:`BodyLimit` (ASGI middleware) answers 413 ``ImageTooLarge`` as soon as a request declares,
or streams, more bytes than allowed, so an over-size upload is never read into memory whole.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mien.service.problem import Problem, problem_response

_CHUNK = 1 << 20


class _TooLarge(Problem):
    def __init__(self, limit: int) -> None:
        super().__init__(
            "ImageTooLarge", f"the request body is larger than the limit of {limit} bytes"
        )


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes (declared or streamed)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    exc = _TooLarge(self.limit)
                    response = problem_response(exc.code, exc.detail, exc.status)
                    await response(scope, receive, send)
                    return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge(self.limit)
            return message

        await self.app(scope, counting_receive, send)


@dataclass
class Upload:
    """One uploaded file, spooled by Starlette (memory or a temporary file)."""

    name: str
    content_type: str
    file: Any  # a binary file object positioned at 0

    def read(self) -> bytes:
        self.file.seek(0)
        data: bytes = self.file.read()
        return data

    def head(self, n: int = 4096) -> bytes:
        self.file.seek(0)
        data: bytes = self.file.read(n)
        self.file.seek(0)
        return data

    def size(self) -> int:
        self.file.seek(0, os.SEEK_END)
        n = int(self.file.tell())
        self.file.seek(0)
        return n

    def sha256(self) -> str:
        h = hashlib.sha256()
        self.file.seek(0)
        while chunk := self.file.read(_CHUNK):
            h.update(chunk)
        self.file.seek(0)
        return h.hexdigest()


def safe_name(name: str | None, default: str) -> str:
    """A label for an upload: its base name, printable, at most 200 characters."""
    base = os.path.basename((name or "").replace("\\", "/")).strip()
    base = re.sub(r"[^\w.\- ()+@,]", "_", base)[:200]
    return base or default


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


async def read_form(request: Request, max_files: int, in_memory: int | None = None) -> FormData:
    """The form of ``request``; with ``in_memory`` (bytes), multipart files up to that size are
    kept in memory, never spooled to a temporary file (Starlette's default spools past 1 MB)."""
    try:
        if in_memory is not None and is_multipart(request):
            from starlette.formparsers import MultiPartParser

            parser = MultiPartParser(
                request.headers, request.stream(), max_files=max_files, max_fields=100
            )
            parser.spool_max_size = in_memory
            return await parser.parse()
        return await request.form(max_files=max_files, max_fields=100)
    except Problem:
        raise
    except Exception as exc:
        raise Problem("BadRequest", f"cannot parse the multipart body: {exc}") from None


def form_files(form: FormData, *fields: str) -> list[Upload]:
    out: list[Upload] = []
    for field in fields:
        for value in form.getlist(field):
            if isinstance(value, UploadFile):
                out.append(
                    Upload(
                        name=safe_name(value.filename, f"upload-{len(out)}"),
                        content_type=value.content_type or "application/octet-stream",
                        file=value.file,
                    )
                )
    return out


def form_text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) and value.strip() else None


_RAW_TYPES = ("image/", "video/", "application/octet-stream")


async def read_raw(
    request: Request, name: str | None = None, in_memory: int | None = None
) -> Upload:
    """The raw request body as one upload; refuses content types that are not media. Bodies up
    to ``in_memory`` bytes (default 8 MiB) stay in memory, larger ones are spooled to a
    temporary file."""
    import tempfile

    ctype = request.headers.get("content-type", "application/octet-stream").lower()
    if not ctype.startswith(_RAW_TYPES):
        raise Problem(
            "UnsupportedMedia",
            f"send an image or video as the raw body (image/*, video/* or "
            f"application/octet-stream) or as multipart/form-data, not {ctype!r}",
        )
    limit = 8 * _CHUNK if in_memory is None else in_memory
    spool = tempfile.SpooledTemporaryFile(max_size=limit)  # noqa: SIM115 - returned
    async for chunk in request.stream():
        spool.write(chunk)
    spool.seek(0)
    label = safe_name(name, "")
    return Upload(name=label or "<bytes>", content_type=ctype, file=spool)


@dataclass(frozen=True)
class RequestBody:
    """What a request sent: its uploads and the non-blank text fields of its form."""

    uploads: list[Upload]
    fields: dict[str, str]
    #: the body was ``multipart/form-data`` (some fields are read from such forms only)
    multipart: bool = False


def is_urlencoded(request: Request) -> bool:
    ctype = request.headers.get("content-type", "").lower()
    return ctype.startswith("application/x-www-form-urlencoded")


async def read_body(
    request: Request,
    file_fields: tuple[str, ...],
    *,
    max_files: int,
    name: str | None = None,
    in_memory: int | None = None,
    text_form: bool = False,
    raw: bool = True,
) -> RequestBody:
    """The one reader of upload requests: a multipart form (files of ``file_fields`` and text
    fields); with ``text_form``, an ``application/x-www-form-urlencoded`` form (text only); else,
    with ``raw``, the raw body as one upload named ``name``; else nothing is read.

    With ``in_memory`` (bytes), uploads up to that size are never spooled to a temporary file.
    """
    if is_multipart(request):
        form = await read_form(request, max_files=max_files, in_memory=in_memory)
        return RequestBody(form_files(form, *file_fields), _texts(form), multipart=True)
    if text_form and is_urlencoded(request):
        return RequestBody([], _texts(await read_form(request, max_files=0)))
    if not raw:
        return RequestBody([], {})
    return RequestBody([await read_raw(request, name, in_memory)], {})


def _texts(form: FormData) -> dict[str, str]:
    """The non-blank text fields of ``form``."""
    out: dict[str, str] = {}
    for key in form:
        value = form_text(form, key)
        if value is not None:
            out[key] = value
    return out


def require_content(uploads: list[Upload]) -> None:
    if not uploads:
        raise Problem("EmptyBody", "no file was uploaded")
    for up in uploads:
        if up.size() == 0:
            raise Problem("EmptyBody", f"{up.name}: the uploaded file is empty")


def save(upload: Upload, folder: Path, index: int) -> str:
    """Write an upload to ``folder`` (created 0700, file 0600); returns the file name.

    Only the job's folder and the media folder above it are created (0700); a data dir that
    is gone is an error (``OSError``), not silently made again with default permissions."""
    folder.parent.mkdir(exist_ok=True, mode=0o700)
    folder.mkdir(exist_ok=True, mode=0o700)
    fname = f"{index:05d}.bin"
    fd = os.open(folder / fname, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        upload.file.seek(0)
        shutil.copyfileobj(upload.file, out, _CHUNK)
    upload.file.seek(0)
    return fname
