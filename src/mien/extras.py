"""The optional extras of mien and a check that one is installed, before any work is done.

A plain ``pip install mien`` analyses, checks and redacts photos and videos. The HTTP service
(``mien serve``, ``mien keys``), Parquet output and the Ray engine need an extra each; a command
that needs one that is missing stops with :class:`~mien.errors.MissingExtraError` (the CLI:
exit 3 and one line naming the ``pip install`` command), not with a traceback.
"""

from __future__ import annotations

import importlib.util

from mien.errors import MissingExtraError

__all__ = ["EXTRAS", "require_extra"]

#: The modules mien imports from each extra. Each entry lists alternatives (any one will do):
#: python-multipart is imported as ``python_multipart``, by older releases as ``multipart``.
EXTRAS: dict[str, tuple[tuple[str, ...], ...]] = {
    "service": (
        ("fastapi",),
        ("uvicorn",),
        ("python_multipart", "multipart"),
        ("sqlalchemy",),
        ("alembic",),
    ),
    "parquet": (("pyarrow.parquet",),),
    "ray": (("ray.data",), ("pyarrow",)),
}


def _installed(name: str) -> bool:
    """Whether module ``name`` can be found (without running it: no import side effects; a
    dotted name imports its parent package)."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):  # the package first: a loaded submodule is not enough
        try:
            if importlib.util.find_spec(".".join(parts[:i])) is None:
                return False
        except (ImportError, ValueError):  # a missing parent package; a module blocked as None
            return False
    return True


def require_extra(extra: str, what: str, also: tuple[str, ...] = ()) -> None:
    """Raise :class:`MissingExtraError` unless every module of ``extra`` is installed.

    ``what`` says who needs it, for the message (e.g. ``"mien serve"``); ``also`` names more
    modules of the same extra needed this time (``psycopg`` for a PostgreSQL database).
    """
    for alternatives in (*EXTRAS[extra], *((m,) for m in also)):
        if not any(_installed(name) for name in alternatives):
            missing = alternatives[0].split(".")[0]
            raise MissingExtraError(
                f"{what} needs the {extra} extra ({missing} is not installed): "
                f"pip install 'mien[{extra}]'",
                extra=extra,
                module=missing,
            )
