"""File uploads: multipart/form-data through wrap_parameters (data-driven) and request.body_params/request.files
(Emmett style); UploadFile; spooling to disk; temporary files closed when the request ends; limits; malformed
bodies are 400; the body cap is still 413. In-process with the TestClient, and over real servers."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import scallion
from scallion import App, build_server, request
from scallion.middlewares import apply_middleware, wrap_parameters
from scallion.response import json
from scallion.testing import TestClient, encode_multipart

pytestmark = pytest.mark.timeout(30)

TESTS = Path(__file__).resolve().parent
KIB = 1024
MIB = 1024 * 1024
CT = "multipart/form-data; boundary=XyZ"


def open_fds() -> set[str]:
    """This process's open file descriptors (Linux)."""
    return set(os.listdir("/proc/self/fd"))


def temporary_files() -> list[str]:
    """The deleted temporary files this process holds open (what a spooled upload on disk is), by target."""
    found = []
    for fd in open_fds():
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the descriptor listdir itself used
        if target.startswith(tempfile.gettempdir()) and target.endswith("(deleted)"):
            found.append(target)
    return found


def describe(upload: Any) -> dict[str, Any]:
    upload.seek(0)
    content = upload.read()
    return {
        "filename": upload.filename,
        "content_type": upload.content_type,
        "size": upload.size,
        "content": content.decode("utf-8", "replace"),
        "headers": upload.headers,
    }


def dump_files(files: dict[str, Any]) -> dict[str, Any]:
    return {
        name: [describe(u) for u in value] if isinstance(value, list) else describe(value)
        for name, value in files.items()
    }


# -- the data-driven style: wrap_parameters ----------------------------------------------------------------
kept: list[Any] = []
"""Uploads a handler saw, to check afterwards that they were closed."""


async def dump(req: dict[str, Any]) -> dict[str, Any]:
    for value in req["files"].values():
        kept.extend(value if isinstance(value, list) else [value])
    return json(
        {
            "form_params": req["form_params"],
            "params": req["params"],
            "files": dump_files(req["files"]),
        }
    )


server = build_server(apply_middleware(wrap_parameters)(dump), max_body_size=8 * MIB)


async def test_fields_go_to_form_params_and_files_to_request_files() -> None:
    kept.clear()
    async with TestClient(server) as client:
        response = await client.post(
            "/?q=query&a=query",
            data={"a": "form", "tags": ["x", "y"], "ü": "ß"},
            files={
                "avatar": ("me.png", b"\x89PNG raw", "image/png"),
                "docs": [("a.txt", "first"), ("b.txt", b"second", "text/plain; charset=utf-8")],
            },
        )
    assert response.status == 200, response.text
    body = response.json()
    assert body["form_params"] == {"a": "form", "tags": ["x", "y"], "ü": "ß"}
    assert body["params"] == {"q": "query", "a": "form", "tags": ["x", "y"], "ü": "ß"}
    avatar = body["files"]["avatar"]
    assert (avatar["filename"], avatar["content_type"], avatar["size"]) == ("me.png", "image/png", 8)
    assert avatar["headers"]["content-disposition"] == 'form-data; name="avatar"; filename="me.png"'
    assert [d["filename"] for d in body["files"]["docs"]] == ["a.txt", "b.txt"]
    assert [d["content"] for d in body["files"]["docs"]] == ["first", "second"]
    assert body["files"]["docs"][1]["content_type"] == "text/plain; charset=utf-8"
    assert all(isinstance(u, scallion.UploadFile) for u in kept) and len(kept) == 3


async def test_urlencoded_and_other_bodies_have_no_files() -> None:
    async with TestClient(server) as client:
        form = await client.post("/", data={"a": "1"})
        plain = await client.post("/", body=b"--XyZ--\r\n", headers={"content-type": "text/plain"})
        empty = await client.post("/", headers={"content-type": CT})
    assert form.json()["form_params"] == {"a": "1"} and form.json()["files"] == {}
    assert plain.json()["form_params"] == {} and plain.json()["files"] == {}
    assert empty.json()["form_params"] == {} and empty.json()["files"] == {}


async def test_a_browser_form_with_no_file_chosen_gives_an_empty_upload() -> None:
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="title"\r\n\r\nhi\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="attachment"; filename=""\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n\r\n--XyZ--\r\n"
    )
    async with TestClient(server) as client:
        response = await client.post("/", body=body, headers={"content-type": CT})
    attachment = response.json()["files"]["attachment"]
    assert (attachment["filename"], attachment["size"], attachment["content"]) == ("", 0, "")
    assert response.json()["form_params"] == {"title": "hi"}


async def test_a_part_without_content_type_is_text_plain_and_utf8_filenames_arrive_as_sent() -> None:
    body = (
        '--XyZ\r\nContent-Disposition: form-data; name="f"; filename="Zürich ünd \\"q\\".txt"\r\n\r\n'
        "data\r\n--XyZ--\r\n"
    ).encode()
    async with TestClient(server) as client:
        response = await client.post("/", body=body, headers={"content-type": CT})
        encoded = await client.post("/", files={"f": ('quote"d\r\nname.txt', b"x")})
    upload = response.json()["files"]["f"]
    assert (upload["filename"], upload["content_type"]) == ('Zürich ünd "q".txt', "text/plain")
    assert encoded.json()["files"]["f"]["filename"] == "quote%22d%0D%0Aname.txt"  # escaped as browsers do


def test_safe_filename_is_the_last_path_component() -> None:
    for sent, safe in [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\report.pdf", "report.pdf"),
        ("..", ""),
        ("dir/.", ""),
        ("a\x00b\x1f.txt", "ab.txt"),
        ("plain.txt", "plain.txt"),
    ]:
        with scallion.UploadFile("f", sent, {}, open(os.devnull, "rb"), 0) as upload:
            assert upload.safe_filename == safe, sent
            assert upload.filename == sent
        assert upload.closed


async def test_files_are_closed_when_the_handler_returns_and_no_descriptor_leaks() -> None:
    kept.clear()
    async with TestClient(server) as client:
        await client.post("/", files={"warmup": ("w", b"w" * (2 * MIB))})  # the first tempfile imports lazily
        kept.clear()
        before = open_fds()
        response = await client.post(
            "/", files={"big": ("big.bin", b"b" * (2 * MIB)), "small": ("s.txt", b"s"), "more": ("m", b"m" * MIB)}
        )
        after = open_fds()
    assert response.status == 200
    assert response.json()["files"]["big"]["size"] == 2 * MIB
    assert len(kept) == 3 and all(upload.closed for upload in kept)
    assert after == before


async def test_a_file_over_max_spool_size_is_on_disk_and_a_small_one_in_memory() -> None:
    seen: dict[str, Any] = {}

    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        seen["temporary_files"] = temporary_files()
        big = req["files"]["big"]
        seen["head"] = big.read(4)
        seen["size"] = big.size
        seen["on_disk"] = os.fstat(big.file.fileno()).st_size
        return json({})

    limited = build_server(apply_middleware(wrap_parameters(max_spool_size=64 * KIB))(handler), max_body_size=MIB)
    async with TestClient(limited) as client:
        before, baseline = open_fds(), set(temporary_files())
        await client.post("/", files={"big": ("big.bin", b"0123" * (32 * KIB)), "small": ("s", b"tiny")})
        assert open_fds() == before
    assert seen["head"] == b"0123" and seen["size"] == seen["on_disk"] == 128 * KIB
    # one new temporary file on disk (the big upload's); the small upload stays in memory
    assert len(set(seen["temporary_files"]) - baseline) == 1


async def test_files_stay_open_for_a_streamed_response_and_close_when_the_request_ends() -> None:
    uploads: list[Any] = []

    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        upload = req["files"]["f"]
        uploads.append(upload)

        async def stream() -> Any:
            while chunk := upload.read(1000):
                yield chunk

        return {"status": 200, "stream": stream(), "headers": {"content-type": "application/octet-stream"}}

    streaming = build_server(apply_middleware(wrap_parameters)(handler), max_body_size=4 * MIB)
    async with TestClient(streaming) as client:
        response = await client.post("/", files={"f": ("f.bin", b"z" * (2 * MIB + 7))})
    assert response.status == 200 and response.body == b"z" * (2 * MIB + 7)
    assert uploads[0].closed


# -- the Emmett style: request.body_params and request.files -----------------------------------------------
app = App(max_body_size=4 * MIB)
app_kept: list[Any] = []


@app.route("/upload", methods=["POST"])
async def upload() -> Any:
    assert request.files is request.files and request.body_params is request.body_params  # parsed once
    assert request.scope["files"] is request.files
    files = request.files
    for value in files.values():
        app_kept.extend(value if isinstance(value, list) else [value])
    digests = {name: hashlib.sha256(u.read()).hexdigest() for name, u in files.items() if not isinstance(u, list)}
    return {"fields": request.body_params, "files": dump_files(files), "sha256": digests}


@app.route("/closed")
async def closed() -> Any:
    return {"uploads": len(app_kept), "closed": all(u.closed for u in app_kept)}


@app.route("/missing", methods=["POST"])
async def missing() -> Any:
    return [request.files["nope"], request.files.nope, request.body_params.nope, sorted(request.files)]


@app.route("/fields-only", methods=["POST"])
async def fields_only() -> Any:
    return request.body_params


async def test_request_files_and_body_params_without_wrap_parameters() -> None:
    app_kept.clear()
    async with TestClient(app) as client:
        response = await client.post(
            "/upload", data={"title": "holiday", "tag": ["a", "b"]}, files={"photo": ("p.jpg", b"JPEG", "image/jpeg")}
        )
        fields = await client.post("/fields-only", data={"x": "1"}, files={"f": b"ignored"})
        urlencoded = await client.post("/fields-only", data={"x": "2"})
    assert response.status == 200, response.text
    body = response.json()
    assert body["fields"] == {"title": "holiday", "tag": ["a", "b"]}
    assert body["files"]["photo"]["filename"] == "p.jpg" and body["files"]["photo"]["content"] == "JPEG"
    assert body["sha256"] == {"photo": hashlib.sha256(b"JPEG").hexdigest()}
    assert fields.json() == {"x": "1"} and urlencoded.json() == {"x": "2"}


async def test_missing_file_names_read_as_none() -> None:
    async with TestClient(app) as client:
        multipart = await client.post("/missing", files={"f": b"1"})
        other = await client.post("/missing", json={"f": 1})
    assert multipart.json() == [None, None, None, ["f"]]
    assert other.json() == [None, None, None, []]


async def test_request_files_are_closed_when_the_request_ends() -> None:
    app_kept.clear()
    async with TestClient(app) as client:
        await client.post("/upload", files={"warmup": ("w", b"w" * (2 * MIB))})
        app_kept.clear()
        before = open_fds()
        response = await client.post("/upload", files={"a": ("a", b"a" * (2 * MIB)), "b": ("b", b"b")})
        after = open_fds()
    assert response.status == 200
    assert len(app_kept) == 2 and all(u.closed for u in app_kept)
    assert after == before


async def test_request_files_reads_what_wrap_parameters_parsed() -> None:
    used = App()
    used.use(wrap_parameters)

    @used.route("/", methods=["POST"])
    async def index() -> Any:
        assert request.files is request.scope["files"]
        return {"names": sorted(request.files), "fields": request.body_params, "form": request["form_params"]}

    async with TestClient(used) as client:
        response = await client.post("/", data={"k": "v"}, files={"one": b"1", "two": b"2"})
    assert response.json() == {"names": ["one", "two"], "fields": {"k": "v"}, "form": {"k": "v"}}


# -- malformed bodies and limits ---------------------------------------------------------------------------
GOOD_PART = b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n'
MALFORMED = {
    "no boundary": (b"--XyZ\r\n", "multipart/form-data", "without a boundary"),
    "truncated": (GOOD_PART + b'--XyZ\r\nContent-Disposition: form-data; name="b"\r\n\r\nhal', CT, "truncated"),
    "no closing boundary": (GOOD_PART, CT, "truncated"),
    "bad header": (b"--XyZ\r\nNo colon here\r\n\r\nx\r\n--XyZ--\r\n", CT, "malformed multipart body"),
    "no content-disposition": (b"--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--\r\n", CT, "Content-Disposition"),
    "no name": (b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--\r\n", CT, "with a name"),
    "wrong boundary": (b"--Other\r\n\r\nx\r\n--Other--\r\n", CT, "malformed multipart body"),
}


@pytest.mark.parametrize("case", MALFORMED)
async def test_malformed_multipart_is_400_with_a_reason_and_no_traceback(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    body, content_type, reason = MALFORMED[case]
    caplog.set_level(logging.DEBUG)
    async with TestClient(server) as client:
        wrapped = await client.post("/", body=body, headers={"content-type": content_type})
    async with TestClient(app) as client:
        emmett = await client.post("/upload", body=body, headers={"content-type": content_type})
    for response in (wrapped, emmett):
        assert response.status == 400, (case, response.text)
        assert response.text.startswith("Bad Request: ") and reason in response.text, response.text
        assert "Traceback" not in response.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert not [r for r in caplog.records if r.exc_info], caplog.text


async def test_a_failed_parse_closes_the_files_it_made() -> None:
    big = ("f.bin", b"x" * (2 * MIB))
    body, content_type = encode_multipart({}, {"f": big, "g": big})
    truncated = body[: -len(b"\r\n--XyZ--\r\n") - 10]
    async with TestClient(server) as client:
        await client.post("/", files={"warmup": big})
        before = open_fds()
        response = await client.post("/", body=truncated, headers={"content-type": content_type})
        assert open_fds() == before
    assert response.status == 400 and "truncated" in response.text


async def test_more_than_max_parts_is_400() -> None:
    def fields(count: int) -> dict[str, Any]:
        return {"f": [str(i) for i in range(count)]}

    async with TestClient(server) as client:
        ok = await client.post("/", data=fields(999), files={"one": b"1"})
        refused = await client.post("/", data=fields(1000), files={"one": b"1"})
    assert ok.status == 200 and len(ok.json()["form_params"]["f"]) == 999
    assert refused.status == 400 and "more than 1000 parts" in refused.text


async def test_a_field_over_max_field_size_is_400_but_a_file_that_big_is_fine() -> None:
    async with TestClient(server) as client:
        field = await client.post("/", data={"essay": "e" * (MIB + 1)}, files={"f": b""})
        at_limit = await client.post("/", data={"essay": "e" * MIB}, files={"f": b""})
        file = await client.post("/", files={"essay": ("essay.txt", b"e" * (MIB + 1))})
    assert field.status == 400 and "multipart field 'essay' is over 1048576 bytes" in field.text
    assert at_limit.status == 200 and len(at_limit.json()["form_params"]["essay"]) == MIB
    assert file.status == 200 and file.json()["files"]["essay"]["size"] == MIB + 1


async def test_limits_are_options_of_wrap_parameters() -> None:
    strict = build_server(apply_middleware(wrap_parameters(max_parts=2, max_field_size=3))(dump))
    async with TestClient(strict) as client:
        parts = await client.post("/", data={"a": "1", "b": "2"}, files={"c": b"3"})
        size = await client.post("/", data={"a": "1234"}, files={"c": b"3"})
        ok = await client.post("/", data={"a": "123"}, files={"c": b"3"})
    assert parts.status == 400 and "more than 2 parts" in parts.text
    assert size.status == 400 and "over 3 bytes" in size.text
    assert ok.status == 200
    for bad in [{"max_parts": 0}, {"max_field_size": -1}, {"max_spool_size": 1.5}]:
        with pytest.raises(ValueError, match=f"wrap_parameters option {next(iter(bad))} must be a positive int"):
            wrap_parameters(**bad)


async def test_the_body_cap_still_answers_413() -> None:
    small = App(max_body_size=10 * KIB)

    @small.route("/", methods=["POST"])
    async def index() -> Any:
        return sorted(request.files)

    async with TestClient(small) as client:
        refused = await client.post("/", files={"f": ("f", b"x" * (10 * KIB))})
        chunked = await client.post("/", chunks=[encode_multipart({}, {"f": b"x" * (11 * KIB)})[0]])
        accepted = await client.post("/", files={"f": ("f", b"x" * (9 * KIB))})
    assert refused.status == 413 and chunked.status == 413
    assert accepted.status == 200 and accepted.json() == ["f"]


async def test_websockets_get_empty_form_params_and_files() -> None:
    from scallion import websocket
    from scallion.response import ws_send

    @websocket
    async def ws(scope: dict[str, Any], receiver: Any) -> Any:
        yield ws_send(f"{scope['form_params']!r} {scope['files']!r}")

    ws_server = build_server(apply_middleware(wrap_parameters)(ws))
    async with TestClient(ws_server) as client, client.websocket("/") as conn:
        assert await conn.receive() == "{} {}"


# -- over real servers -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_server(serve_app: Callable[..., Any]) -> Any:
    path = os.pathsep.join([str(TESTS), str(TESTS / "apps"), os.environ.get("PYTHONPATH", "")])
    return serve_app("test_uploads:app", PYTHONPATH=path)


def post_file(port: int, path: str, content: bytes) -> tuple[int, bytes]:
    body, content_type = encode_multipart({"title": "real"}, {"photo": ("real.bin", content, "image/png")})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_real_server_upload_and_413(real_server: Any) -> None:
    import msgspec

    content = os.urandom(1536 * KIB)  # above the 1 MiB spool size: on disk
    status, raw = post_file(real_server.port, "/upload", content)
    assert status == 200, raw
    body = msgspec.json.decode(raw)
    assert body["fields"] == {"title": "real"}
    photo = body["files"]["photo"]
    assert (photo["filename"], photo["content_type"], photo["size"]) == ("real.bin", "image/png", len(content))
    assert body["sha256"] == {"photo": hashlib.sha256(content).hexdigest()}

    connection = http.client.HTTPConnection("127.0.0.1", real_server.port, timeout=10)
    try:
        # declared over the 4 MiB cap: the server answers 413 before the body is sent
        connection.putrequest("POST", "/upload")
        connection.putheader("Content-Type", CT)
        connection.putheader("Content-Length", str(5 * MIB))
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 413
    finally:
        connection.close()

    connection = http.client.HTTPConnection("127.0.0.1", real_server.port, timeout=10)
    try:
        connection.request("GET", "/closed")
        closed = msgspec.json.decode(connection.getresponse().read())
    finally:
        connection.close()
    assert closed == {"uploads": 1, "closed": True}
    assert "Traceback" not in real_server.log()
