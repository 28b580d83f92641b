"""``GET /docs``: the API reference as one plain HTML page, drawn from the OpenAPI document.

No script, no external asset (FastAPI's Swagger UI loads its code from a CDN and runs inline
script, which the Content Security Policy forbids): every operation with its parameters,
request body types and answers, and a link to ``/openapi.json`` for tools.
"""

from __future__ import annotations

import html
from importlib import resources
from string import Template
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

router = APIRouter(include_in_schema=False)

_METHODS = ("get", "post", "put", "patch", "delete")


def _e(value: Any) -> str:
    return html.escape(str(value))


def _schema_text(schema: dict[str, Any] | None) -> str:
    if not schema:
        return ""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_schema_text(s) for s in schema["anyOf"])
    kind = str(schema.get("type", ""))
    if kind == "array":
        return f"array of {_schema_text(schema.get('items'))}"
    extra = []
    if "enum" in schema:
        extra.append("one of " + ", ".join(str(v) for v in schema["enum"]))
    for bound in ("minimum", "maximum", "pattern"):
        if bound in schema:
            extra.append(f"{bound} {schema[bound]}")
    if "default" in schema:
        extra.append(f"default {schema['default']!r}")
    return kind + (f" ({'; '.join(extra)})" if extra else "")


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    out = [
        f"<section class='op' id='{_e(method)}-{_e(path)}'>",
        f"<h2><code>{_e(method.upper())} {_e(path)}</code></h2>",
    ]
    if op.get("summary"):
        out.append(f"<p>{_e(op['summary'])}</p>")
    if op.get("description"):
        out.append(f"<p class='desc'>{_e(op['description'])}</p>")
    params = op.get("parameters") or []
    if params:
        out.append("<table><tr><th>parameter</th><th>in</th><th>type</th><th>about</th></tr>")
        for p in params:
            name = _e(p.get("name", "")) + (" <em>(required)</em>" if p.get("required") else "")
            out.append(
                f"<tr><td><code>{name}</code></td><td>{_e(p.get('in', ''))}</td>"
                f"<td>{_e(_schema_text(p.get('schema')))}</td>"
                f"<td>{_e(p.get('description', ''))}</td></tr>"
            )
        out.append("</table>")
    body = op.get("requestBody")
    if body:
        types = ", ".join(f"<code>{_e(t)}</code>" for t in body.get("content", {}))
        out.append(f"<p>Request body: {types}</p>")
    answers = []
    for status, resp in sorted((op.get("responses") or {}).items()):
        types = ", ".join(_e(t) for t in resp.get("content", {}))
        answers.append(
            f"<li><strong>{_e(status)}</strong> {_e(resp.get('description', ''))}"
            + (f" <span class='types'>({types})</span>" if types else "")
            + "</li>"
        )
    if answers:
        out.append(f"<ul class='answers'>{''.join(answers)}</ul>")
    out.append("</section>")
    return "\n".join(out)


def render_docs(doc: dict[str, Any]) -> str:
    info = doc.get("info", {})
    ops = []
    toc = []
    for path, item in doc.get("paths", {}).items():
        for method in _METHODS:
            if method in item:
                ops.append(_operation(path, method, item[method]))
                toc.append(
                    f"<li><a href='#{_e(method)}-{_e(path)}'><code>{_e(method.upper())} "
                    f"{_e(path)}</code></a></li>"
                )
    text = (resources.files("mien.service") / "templates" / "docs.html").read_text("utf-8")
    return Template(text).substitute(
        title=_e(info.get("title", "")),
        version=_e(info.get("version", "")),
        description="".join(
            f"<p>{_e(par)}</p>" for par in str(info.get("description", "")).split("\n\n")
        ),
        toc="\n".join(toc),
        operations="\n".join(ops),
    )


@router.get("/docs", response_class=HTMLResponse)
def api_docs(request: Request) -> Response:
    return HTMLResponse(render_docs(request.app.openapi()))
