"""POST /api/library/import and GET /api/library/export: the caller's list as a file.

The import body is read with a hard cap (50 MiB → 413) before anything is parsed;
it is either the raw file or a multipart form whose ``file`` field is the file."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.datastructures import UploadFile
from starlette.types import Message

from mangahub.domain.errors import BadRequest
from mangahub.http.deps import CurrentUser, RuntimeDep
from mangahub.lists import ListFormat, ListTooLarge
from mangahub.lists.source import MAX_BODY
from mangahub.services.list_export import ListExportService
from mangahub.services.list_import import ImportMode, ImportReport, ListImportService

router = APIRouter(
    tags=["library"], responses={401: {"description": "Missing or invalid access token"}}
)


@router.post(
    "/import",
    responses={
        400: {"description": "Not a list file we can read (or hostile XML)"},
        413: {"description": "Over 50 MiB, or too many entries"},
        422: {"description": "A value no entry may hold, or an anime list"},
    },
)
async def import_list(
    request: Request,
    principal: CurrentUser,
    runtime: RuntimeDep,
    mode: ImportMode = ImportMode.MERGE,
    dry_run: bool = False,
) -> ImportReport:
    """Import a MAL XML export (.xml or .xml.gz), an AniList MediaListCollection JSON
    or our own JSON export; the format is detected from the content. All or nothing."""
    data = await _file_bytes(request)
    service = ListImportService(runtime.db, runtime.bus)
    return await service.import_file(principal.user_id, data, mode=mode, dry_run=dry_run)


@router.get("/export", response_class=Response)
async def export_list(
    principal: CurrentUser,
    runtime: RuntimeDep,
    format: Annotated[ListFormat, Query(description="mal (MAL XML) or json")] = ListFormat.MAL_XML,
) -> Response:
    """My list as MAL XML (MAL's importer takes it) or as JSON with every field."""
    if format is ListFormat.ANILIST_JSON:
        raise BadRequest("export formats are mal and json")
    exported = await ListExportService(runtime.db).export(principal.user_id, format)
    return Response(
        exported.content,
        media_type=exported.media_type,
        headers={"Content-Disposition": f'attachment; filename="{exported.filename}"'},
    )


async def _file_bytes(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise _too_large()
    body = await _read_capped(request)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await _form_file(request, body)
    if not body:
        raise BadRequest("send the list file as the body or as the multipart field 'file'")
    return body


async def _read_capped(request: Request) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        # The multipart envelope adds a few hundred bytes to a file at the cap.
        if size > MAX_BODY + 64 * 1024:
            raise _too_large()
        parts.append(chunk)
    return b"".join(parts)


async def _form_file(request: Request, body: bytes) -> bytes:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=10)
    except Exception as exc:  # the multipart parser's own errors: a malformed form
        raise BadRequest(f"malformed multipart form: {exc}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadRequest("the multipart form has no file field 'file'")
        data = await upload.read()
    finally:
        await form.close()
    if len(data) > MAX_BODY:
        raise _too_large()
    return data


def _too_large() -> ListTooLarge:
    return ListTooLarge(f"the list file is over {MAX_BODY // (1024 * 1024)} MiB")
