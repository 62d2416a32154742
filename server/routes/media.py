"""``/_media/{key}``: the embedded local object store's signed URLs, served over HTTP (GET with Range, PUT).

The store (:class:`~tams_analytics.storage.local.LocalObjectStore`) signs and checks the URLs; these
routes only carry bytes.
"""

from __future__ import annotations

import errno
import logging
import re
from collections.abc import Callable, Iterator
from urllib.parse import unquote

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from server.errors import error_response
from tams_analytics.exceptions import InsufficientStorageError
from tams_analytics.ratelog import RepeatedLog
from tams_analytics.storage.base import ObjectStream, StorageError
from tams_analytics.storage.local import DEFAULT_CONTENT_TYPE, READ_CHUNK, LocalObjectStore, ObjectTooLarge

logger = logging.getLogger(__name__)
#: uploads a full volume refuses: one record a minute
_refused = RepeatedLog(logger)


class _Unsatisfiable(Exception):
    pass


_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$", re.IGNORECASE)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range a single-range ``Range`` header asks for, or None to send it all.

    Multi-range and malformed headers are ignored (RFC 9110 allows that); a well-formed range
    that does not overlap the object raises ``_Unsatisfiable``.
    """
    if not header:
        return None
    match = _RANGE_RE.match(header.strip())
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _Unsatisfiable
        return max(0, size - suffix), size - 1
    start = int(first)
    end = size - 1 if last == "" else int(last)
    if last != "" and end < start:
        return None
    if start >= size:
        raise _Unsatisfiable
    return start, min(end, size - 1)


def _error(request: Request, status: int, summary: str, headers: dict[str, str] | None = None) -> Response:
    """A TAMS ``error.json`` response (to a HEAD request, its header fields without the body)."""
    return error_response(status, summary, headers, head=request.method == "HEAD")


def _request_key(request: Request, decoded_key: str) -> str | None:
    """The object key a request addresses, or None if the path is not a URL this store issued.

    Issued URLs carry the key as one percent-encoded segment. Starlette hands the route the
    already-decoded path, in which an encoded ``/`` is indistinguishable from a real one, so the
    key is taken from the raw path's last segment and must agree with the decoded path. A path
    with literal separators after the prefix therefore never matches.
    """
    raw_path = request.scope.get("raw_path")
    if not raw_path:
        return decoded_key or None
    segment = raw_path.decode("latin-1").split("?", 1)[0].rsplit("/", 1)[-1]
    key = unquote(segment)
    if not key or key != decoded_key:
        return None
    return key


def _iter_file(stream: ObjectStream, start: int, length: int) -> Iterator[bytes]:
    try:
        stream.body.seek(start)
        remaining = length
        while remaining > 0:
            chunk = stream.body.read(min(READ_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        stream.body.close()


def _write_failed(request: Request, key: str, exc: OSError) -> Response:
    """The answer to an upload the file system refused: 507 for a full volume (said once a minute), else 500 naming
    the reason; never a partial object."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        summary = (
            f"the media object was not stored: no space left on the volume of local storage ({exc.filename or key})"
        )
        _refused.log(logging.WARNING, "no space", "upload of %r refused: %s", key, summary)
        return _error(request, 507, summary)
    logger.error("writing media object %r failed: %s", key, exc)
    return _error(request, 500, f"the media object could not be stored: {exc.strerror or exc}")


def make_router(
    store_provider: Callable[[], LocalObjectStore],
    *,
    route_prefix: str = "/_media",
    admit_upload: Callable[[], None] = lambda: None,
) -> APIRouter:
    """Routes serving a ``LocalObjectStore``'s signed URLs; ``route_prefix`` must match the store's.
    ``admit_upload`` raises :class:`~tams_analytics.exceptions.InsufficientStorageError` to refuse an upload (the disk
    watermarks: :mod:`server.volumes`); an upload the volume runs out of space for is refused the same way, and
    nothing of it becomes visible (it is written to a temporary file, renamed into place only when complete)."""
    router = APIRouter()
    path = route_prefix + "/{key:path}"

    def authorise(request: Request, key_param: str, method: str) -> tuple[LocalObjectStore, str] | Response:
        store = store_provider()
        if store.route_prefix != route_prefix:
            logger.error("local store prefix %s does not match router prefix %s", store.route_prefix, route_prefix)
            return _error(request, 500, "media route misconfigured")
        key = _request_key(request, key_param)
        if key is None:
            return _error(request, 404, "no such media object URL")
        key, reason = store.signed_key(method, key, dict(request.query_params))
        if reason is not None:
            logger.info("refused %s of media object %r: %s", request.method, key, reason)
            return _error(request, 403, reason)
        return store, key

    @router.api_route(path, methods=["GET", "HEAD"], include_in_schema=False)
    async def get_object(request: Request, key: str) -> Response:
        authorised = authorise(request, key, "GET")
        if isinstance(authorised, Response):
            return authorised
        store, key = authorised
        try:
            stream = await run_in_threadpool(store.open_read, key)
        except KeyError:
            return _error(request, 404, "media object not found")
        except (StorageError, ValueError) as exc:
            return _error(request, 403, str(exc))
        headers = {"Accept-Ranges": "bytes", "Content-Type": stream.content_type}
        try:
            byte_range = parse_range(request.headers.get("range"), stream.size)
        except _Unsatisfiable:
            stream.body.close()
            headers = {"Accept-Ranges": "bytes", "Content-Range": f"bytes */{stream.size}"}
            return _error(request, 416, "the requested range is not satisfiable", headers)
        status = 200
        start, length = 0, stream.size
        if byte_range is not None:
            status = 206
            start, length = byte_range[0], byte_range[1] - byte_range[0] + 1
            headers["Content-Range"] = f"bytes {byte_range[0]}-{byte_range[1]}/{stream.size}"
        headers["Content-Length"] = str(length)
        if request.method == "HEAD":
            stream.body.close()
            return Response(status_code=status, headers=headers)
        return StreamingResponse(_iter_file(stream, start, length), status_code=status, headers=headers)

    @router.put(path, include_in_schema=False)
    async def put_object(request: Request, key: str) -> Response:
        authorised = authorise(request, key, "PUT")
        if isinstance(authorised, Response):
            return authorised
        store, key = authorised
        too_big = _error(request, 413, f"objects are limited to {store.max_object_bytes} bytes")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > store.max_object_bytes:
            return too_big
        try:
            admit_upload()
            pending = await run_in_threadpool(store.begin_write, key)
        except InsufficientStorageError as exc:
            return _error(request, 507, str(exc))
        except OSError as exc:
            return _write_failed(request, key, exc)
        except (StorageError, ValueError) as exc:
            return _error(request, 403, str(exc))
        content_type = request.headers.get("content-type") or DEFAULT_CONTENT_TYPE
        try:
            async for chunk in request.stream():
                if chunk:
                    await run_in_threadpool(pending.write, chunk)
            await run_in_threadpool(pending.commit, content_type)
        except ObjectTooLarge:
            await run_in_threadpool(pending.abort)
            return too_big
        except OSError as exc:
            await run_in_threadpool(pending.abort)
            return _write_failed(request, key, exc)
        except BaseException:
            await run_in_threadpool(pending.abort)
            raise
        logger.debug("stored media object %r (%s bytes)", key, pending.size)
        # 200 whether new or replaced, as S3's PutObject answers (clients written for S3 check for it)
        return Response(status_code=200)

    return router
