"""``python -m mien.service.openapi [FILE]``: write the OpenAPI document (docs/openapi.json)."""

from __future__ import annotations

import json
import sys

from mien.service.app import openapi_document


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if args:
        from mien.media.write import atomic_output, check_output_path

        check_output_path(args[0])  # mien's output rule: no link, device, FIFO or folder
        with atomic_output(args[0], "w") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
