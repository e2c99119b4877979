"""`POST /api/project` — bring your own face: an uploaded picture → its crop, the model's reconstruction and its z.

The body is `multipart/form-data` with the picture in a field named `file` (what the page's upload panel sends), or
the raw picture with an `image/*` content type (`curl --data-binary @me.jpg -H 'Content-Type: image/jpeg'`).
Options are form fields or query parameters: `center_crop` (true: skip face detection), `model`, `label`,
`version`. The body limit of every POST applies (413 above `limits.max_body_bytes`; the page downsizes big photos
before sending). The picture is cropped like the training data (dcgan.projection.crop_for_projection: photos are
detected and aligned, small squares such as avatars centre-cropped), then the model's `project` signature finds z.

Answer: `{version..., "crop": "aligned"|"center-crop", "original": PNG data URL of the crop, "z": [...],
"png": the reconstruction (data URL), "distance": per-pixel MSE in [-1, 1] units}`.
Errors: 400 `not_an_image` (with the decoder's reason), 400 `no_face` (with `"offer": {"center_crop": true}`:
send the same picture again with center_crop=true), 400 `no_project_signature`, 415 for other content types.
"""

from __future__ import annotations

import asyncio
from email import policy
from email.parser import BytesParser
from typing import Any

import numpy as np
from fastapi import APIRouter, Request

from serving.client import ServingClientError
from serving.studio.backend import Face, Resolved, StudioError, model_server_error, png_data_url
from serving.studio.dependencies import Backend, _bad, envelope, target_of_query

router = APIRouter(prefix="/api")

TRUE = ("1", "true", "yes", "on")


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """multipart/form-data → {field name: (file name, bytes)} (the standard library's MIME parser: no
    python-multipart dependency)."""
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise _bad("the multipart body could not be parsed (no parts for its boundary)", "file")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


async def _upload(request: Request) -> tuple[bytes, dict[str, str]]:
    """The picture's bytes and the options (form fields over query parameters)."""
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";")[0].strip().lower()
    body = await request.body()
    options = {k: v for k, v in request.query_params.items()}
    if kind == "multipart/form-data":
        fields = _multipart(content_type, body)
        if "file" not in fields:
            raise _bad("send the picture in a form field named 'file'", "file")
        for name, (filename, value) in fields.items():
            if name != "file" and filename is None:
                options[name] = value.decode("utf-8", "replace")
        return fields["file"][1], options
    if kind.startswith("image/") or kind == "application/octet-stream":
        return body, options
    raise StudioError(415, "unsupported_media_type", "send the picture as multipart/form-data (field 'file') or "
                      f"as the raw image with an image/* content type (got {kind or 'none'})")


def _option(options: dict[str, str], name: str) -> str | None:
    value = options.get(name)
    return value if value not in (None, "") else None


@router.post("/project", openapi_extra={"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary"}, "center_crop": {"type": "boolean"},
        "model": {"type": "string"}, "label": {"type": "string"}, "version": {"type": "integer"}}}},
    "image/*": {"schema": {"type": "string", "format": "binary"}}}}})
async def project(request: Request, backend: Backend) -> dict[str, Any]:
    from dcgan import images as imlib
    from dcgan import projection

    data, options = await _upload(request)
    if not data:
        raise _bad("the uploaded file is empty", "file", code="not_an_image")
    center = (_option(options, "center_crop") or "false").lower() in TRUE
    version = _option(options, "version")
    if version is not None and not version.isdigit():
        raise _bad(f"version must be a non-negative integer, got {version!r}", "version")
    target = target_of_query(backend, _option(options, "model"), options.get("label"),
                             int(version) if version is not None else None)
    try:
        decoded = await asyncio.to_thread(imlib.decode_image, data)
    except imlib.ImageRejected as e:
        raise _bad(f"the upload is not a usable image ({e})", "file", code="not_an_image") from None

    async def work(r: Resolved) -> dict[str, Any]:
        side = (r.image_shape or (None,))[0]
        if not side:
            raise StudioError(502, "not_a_generator", f"{target.describe()}: unknown image size")
        try:
            crop, how = await asyncio.to_thread(projection.crop_decoded, decoded, side,
                                                projection.CROP_CENTER if center else projection.CROP_AUTO)
        except projection.NoFaceFound as e:
            error = _bad(f"{e}: send it again with center_crop=true", "file", code="no_face")
            error.details = [{"field": "center_crop", "message": "centre-crop instead of face alignment",
                              "offer": {"center_crop": True}}]
            raise error from None

        def call():
            return backend.client.predict({"image": projection.to_model_range([crop])}, signature="project",
                                          model=r.model, version=r.version)
        try:
            result = await asyncio.to_thread(call)
        except ServingClientError as e:
            if "project" in (e.details or "") and "not found" in (e.details or "").lower():
                raise StudioError(400, "no_project_signature",
                                  f"{target.describe()} (version {r.version}) has no `project` signature: export "
                                  "it again with this version of dcgan") from None
            raise model_server_error(e, backend.config.server, target) from None
        z = np.asarray(result.outputs["z"][0], np.float32)
        png = imlib.encode_png(imlib.to_uint8(result.outputs["images"])[0])
        backend.faces.put((r.model, r.version, "z", z.tobytes()), Face(z, png))
        return {"crop": how, "original": png_data_url(imlib.encode_png(crop)), "z": z.tolist(),
                "png": png_data_url(png), "distance": float(result.outputs["distance"][0])}

    resolved, answer = await backend._with_version(target, work)
    return envelope(resolved, **answer)
