"""Image uploads to ``/v1/predict``: the multipart form, read from an already size-limited body.

The gateway reads the body itself, so its size limit holds before any parser runs; the form
is then parsed from those bytes with at most one file. The file's name and Content-Type are
ignored: `bastion.defenses.guards.InputGuard.inspect_image` reads the type from its bytes.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

__all__ = ["IMAGE_FIELD", "PREDICT_BODY", "form_image"]

#: The form field an image upload to ``/v1/predict`` is sent in.
IMAGE_FIELD = "image"

#: OpenAPI for /v1/predict, which reads its body itself (size limit first): JSON or an image.
PREDICT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "inputs": {"type": "array", "description": "A batch of samples."}
                    },
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [IMAGE_FIELD],
                    "properties": {
                        IMAGE_FIELD: {
                            "type": "string",
                            "format": "binary",
                            "description": "One image; its type is read from its bytes.",
                        }
                    },
                }
            },
        },
    }
}


async def form_image(request: Request, body: bytes) -> bytes | str:
    """The bytes of the file in field `IMAGE_FIELD` of the multipart ``body``, or a message
    saying why there is none (a malformed form, or no such file)."""

    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(request.headers, stream(), max_files=1, max_fields=4)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        return f"Expected a multipart form with one file field {IMAGE_FIELD!r}: {exc.message}"
    try:
        upload = form.get(IMAGE_FIELD)
        if not isinstance(upload, UploadFile):
            return (
                f"Expected a multipart form with one file field {IMAGE_FIELD!r}, "
                f"but got fields {sorted(form.keys())[:4]}"
            )
        return await upload.read()
    finally:
        await form.close()
