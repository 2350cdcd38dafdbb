"""File uploads: a ``multipart/form-data`` body parsed into form fields and :class:`UploadFile` objects.

scallion reads the whole request body before the handler runs (at most the server's ``max_body_size``, 1 MiB by
default; a bigger body gets 413 unread, uploads included), so parsing is one pass of python-multipart's streaming
``MultipartParser`` over bytes already in memory, and the methods of :class:`UploadFile` are synchronous: nothing
waits for the network. Each file's content is copied into a ``tempfile.SpooledTemporaryFile`` that stays in memory
up to ``max_spool_size`` (1 MiB) and moves to a temporary file on disk above it.

Limits against abuse (a body of many tiny parts, one huge field), each a 400 when exceeded:

- ``max_parts`` (:data:`MAX_PARTS`, 1,000): fields and files together;
- ``max_field_size`` (:data:`MAX_FIELD_SIZE`, 1 MiB): one field's value (files are bounded by ``max_body_size``);
- per part at most 8 header lines of at most 4,224 bytes each (python-multipart's limits).

A malformed body (no boundary, a truncated body without its closing boundary, bad part headers, a part without
``Content-Disposition: form-data; name=...``) raises :class:`~scallion.errors.BadRequest` with a short reason:
the client gets 400 and no traceback is logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Iterable
from types import TracebackType
from typing import IO, Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from .datastructures import QueryParams
from .errors import BadRequest

MAX_PARTS = 1000
"""Default most parts (fields and files) in one multipart body."""
MAX_FIELD_SIZE = 1024 * 1024
"""Default most bytes in one field's value (not a file's)."""
MAX_SPOOL_SIZE = 1024 * 1024
"""Default most bytes of a file kept in memory; a bigger file is spooled to a temporary file on disk."""

MULTIPART = "multipart/form-data"

_PARSER_LOG = logging.Logger("scallion.uploads.python_multipart")
"""python-multipart logs a WARNING for every malformed body it sees: client input, which the 400 already
reports. Its parsers log to this logger instead, unregistered and disabled."""
_PARSER_LOG.disabled = True


class UploadFile:
    """One uploaded file of a ``multipart/form-data`` body.

    ``filename`` is the name the client sent, untrusted: it may hold ``../`` or a full path. Never join it to a
    directory as is; :attr:`safe_filename` is its last path component. ``file`` is a
    ``tempfile.SpooledTemporaryFile`` positioned at the start, in memory up to ``max_spool_size`` bytes and on
    disk above. The file is closed when the request ends; use it as a context manager, or :meth:`close`, to
    close it sooner. The methods are synchronous: the content is local already.
    """

    __slots__ = ("field_name", "file", "filename", "headers", "size")

    def __init__(self, field_name: str, filename: str, headers: dict[str, str], file: IO[bytes], size: int) -> None:
        self.field_name = field_name
        """The form field the file was sent as (``name=`` of its ``Content-Disposition``)."""
        self.filename = filename
        """The file name as the client sent it (untrusted; may be ``""`` when a browser sends no file)."""
        self.headers = headers
        """The part's headers, lower-case names."""
        self.file = file
        """The content: a ``SpooledTemporaryFile``."""
        self.size = size
        """The content's length in bytes."""

    @property
    def content_type(self) -> str:
        """The part's ``Content-Type`` as sent; ``text/plain`` when there is none (RFC 7578, 4.4)."""
        return self.headers.get("content-type", "text/plain")

    @property
    def safe_filename(self) -> str:
        """:attr:`filename` reduced to its last path component (``/`` and ``\\`` both separate), without control
        characters; ``""`` when nothing usable is left (``..``, ``.``). Still check it against your own rules
        (extension, uniqueness) before saving under it."""
        name = self.filename.replace("\\", "/").rsplit("/", 1)[-1]
        name = "".join(char for char in name if char.isprintable()).strip()
        return "" if name in ("", ".", "..") else name

    @property
    def closed(self) -> bool:
        """True once the file was closed (by :meth:`close` or at the end of the request)."""
        return bool(self.file.closed)

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes from the current position (all of the rest by default)."""
        return self.file.read(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position, as ``file.seek``; returns the new position."""
        return self.file.seek(offset, whence)

    def close(self) -> None:
        """Close the file (and delete its temporary file on disk, if it had one); closing twice is fine."""
        self.file.close()

    def __enter__(self) -> UploadFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<UploadFile {self.field_name}={self.filename!r} {self.content_type} {self.size} bytes>"


class UploadFiles(QueryParams):
    """Uploaded files by field name: one file -> :class:`UploadFile`, a repeated name -> ``list[UploadFile]``;
    a missing name reads as ``None`` by item (``files["photo"]``) or attribute (``files.photo``), as in
    ``form_params``."""


def is_multipart(content_type: str) -> bool:
    """Whether a ``Content-Type`` header value is ``multipart/form-data`` (any parameters, any case)."""
    return content_type.partition(";")[0].strip().lower() == MULTIPART


def _add(into: QueryParams, name: str, value: Any) -> None:
    previous = into.get(name)
    if previous is None:
        into[name] = value
    elif isinstance(previous, list):
        previous.append(value)
    else:
        into[name] = [previous, value]


def iter_files(files: UploadFiles) -> Iterable[UploadFile]:
    """Every :class:`UploadFile` in ``files``, repeated names flattened."""
    for value in files.values():
        if isinstance(value, list):
            yield from value
        else:
            yield value


def close_files(files: UploadFiles) -> None:
    """Close every file in ``files`` (an :class:`UploadFiles`)."""
    for upload in iter_files(files):
        upload.close()


def close_files_when_done(files: UploadFiles) -> None:
    """Close every file in ``files`` when the task serving the current request ends (servers run each ASGI
    request in a task of its own). Outside a task (a synchronous caller) they are left open, to be closed by
    their owner or the garbage collector."""
    if not files:
        return
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running event loop
        return
    if task is not None:
        task.add_done_callback(lambda _: close_files(files))


class _Parts:
    """The callbacks of one ``MultipartParser`` run: builds fields and files part by part."""

    def __init__(self, max_parts: int, max_field_size: int, max_spool_size: int) -> None:
        self.max_parts = max_parts
        self.max_field_size = max_field_size
        self.max_spool_size = max_spool_size
        self.fields = QueryParams()
        self.files = UploadFiles()
        self.count = 0
        self.headers: dict[str, str] = {}
        self.header_name = bytearray()
        self.header_value = bytearray()
        self.name = ""
        self.filename: str | None = None
        self.value = bytearray()
        self.file: IO[bytes] | None = None
        self.size = 0
        self.ended = False

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": self.header_field,
            "on_header_value": self.header_value_data,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_end": self.end,
        }

    def part_begin(self) -> None:
        self.count += 1
        if self.count > self.max_parts:
            raise BadRequest(f"multipart body has more than {self.max_parts} parts")
        self.headers = {}
        self.size = 0

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def header_value_data(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def header_end(self) -> None:
        name = self.header_name.decode("latin-1").strip().lower()
        self.headers[name] = self.header_value.decode("utf-8", "replace").strip()
        self.header_name.clear()
        self.header_value.clear()

    def headers_finished(self) -> None:
        disposition = self.headers.get("content-disposition")
        if disposition is None:
            raise BadRequest("a multipart part has no Content-Disposition header")
        kind, options = parse_options_header(disposition.encode("utf-8"))
        if kind != b"form-data" or b"name" not in options:
            raise BadRequest(f"a multipart part's Content-Disposition is not form-data with a name: {disposition!r}")
        self.name = options[b"name"].decode("utf-8", "replace")
        filename = options.get(b"filename")
        self.filename = None if filename is None else filename.decode("utf-8", "replace")
        if self.filename is not None:
            # closed by part_end's UploadFile's owner, or by parse_multipart on an error
            self.file = tempfile.SpooledTemporaryFile(max_size=self.max_spool_size, mode="w+b")  # noqa: SIM115
        else:
            self.value.clear()

    def part_data(self, data: bytes, start: int, end: int) -> None:
        self.size += end - start
        if self.file is not None:
            self.file.write(memoryview(data)[start:end])
        elif self.size > self.max_field_size:
            raise BadRequest(f"multipart field {self.name!r} is over {self.max_field_size} bytes")
        else:
            self.value += data[start:end]

    def part_end(self) -> None:
        if self.file is not None:
            self.file.seek(0)
            upload = UploadFile(self.name, self.filename or "", self.headers, self.file, self.size)
            self.file = None
            _add(self.files, self.name, upload)
        else:
            _add(self.fields, self.name, self.value.decode("utf-8", "replace"))

    def end(self) -> None:
        self.ended = True


def parse_multipart(
    body: bytes,
    content_type: str,
    *,
    max_parts: int = MAX_PARTS,
    max_field_size: int = MAX_FIELD_SIZE,
    max_spool_size: int = MAX_SPOOL_SIZE,
) -> tuple[QueryParams, UploadFiles]:
    """A ``multipart/form-data`` body -> ``(fields, files)``.

    ``fields`` is a :class:`~scallion.datastructures.QueryParams` of the parts without a ``filename`` (values
    decoded as UTF-8; one value -> ``str``, a repeated name -> ``list``); ``files`` maps the names of the parts
    with one (even ``filename=""``) to :class:`UploadFile` (a repeated name -> ``list``). An empty body is an
    empty form. A malformed body or a limit exceeded raises :class:`~scallion.errors.BadRequest` and closes
    the files made so far; the caller closes the files it gets (:func:`close_files`)."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise BadRequest("multipart/form-data without a boundary in its Content-Type")
    if not body:
        return QueryParams(), UploadFiles()
    parts = _Parts(max_parts, max_field_size, max_spool_size)
    try:
        parser = MultipartParser(boundary, parts.callbacks())  # type: ignore[arg-type]
        parser.logger = _PARSER_LOG
        parser.write(body)
        parser.finalize()
        if not parts.ended or parser.state != MultipartState.END:
            raise BadRequest("truncated multipart body: no closing boundary")
    except BaseException as exc:
        close_files(parts.files)
        if parts.file is not None:
            parts.file.close()
        if isinstance(exc, FormParserError):
            raise BadRequest(f"malformed multipart body: {exc}") from None
        raise
    return parts.fields, parts.files


__all__ = [
    "MAX_FIELD_SIZE",
    "MAX_PARTS",
    "MAX_SPOOL_SIZE",
    "UploadFile",
    "UploadFiles",
    "close_files",
    "close_files_when_done",
    "is_multipart",
    "iter_files",
    "parse_multipart",
]
