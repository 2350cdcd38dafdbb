"""wrap_static: files, caching validators, streaming, fall-through, and no way out of the root."""

from __future__ import annotations

import asyncio
import os
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from scallion import build_server, standard_not_found
from scallion.middlewares import apply_middleware, wrap_routes, wrap_static
from scallion.response import text
from scallion.testing import TestClient, WebSocketDenied

SECRET = b"TOP-SECRET-OUTSIDE-ROOT"


async def hello(req: dict[str, Any]) -> dict[str, Any]:
    return text("hello route")


async def fallback(req: dict[str, Any]) -> dict[str, Any]:
    return text("fell through", 299)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "public"
    (root / "css").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "empty").mkdir()
    (root / "css" / "site.css").write_text("body { color: green }")
    (root / "docs" / "index.html").write_text("<h1>docs</h1>")
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "big.bin").write_bytes(bytes(range(256)) * 2000)
    (root / "a b%20c.txt").write_text("odd name")
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "index.html").write_bytes(SECRET)
    (root / "escape.txt").symlink_to(tmp_path / "secret.txt")
    (root / "escape_dir").symlink_to(tmp_path / "outside")
    (root / "inside_link.css").symlink_to(root / "css" / "site.css")
    return root


def app(root: Path, prefix: str = "/", **options: Any) -> Any:
    table = wrap_routes([("/hello", ["GET"], hello), ("/static/hello", ["GET"], hello)])
    return build_server(apply_middleware(wrap_static(root, prefix, **options), table)(fallback))


async def test_serves_a_file_with_headers(tree: Path) -> None:
    info = os.stat(tree / "css" / "site.css")
    async with TestClient(app(tree)) as client:
        response = await client.get("/css/site.css")
    assert response.status == 200
    assert response.body == b"body { color: green }"
    assert response.headers["content-type"] == "text/css"
    assert response.headers["content-length"] == str(info.st_size)
    assert response.headers["last-modified"] == formatdate(info.st_mtime, usegmt=True)
    assert response.headers["etag"].startswith('"') and response.headers["etag"].endswith('"')


async def test_head_has_headers_but_no_body(tree: Path) -> None:
    async with TestClient(app(tree)) as client:
        response = await client.head("/css/site.css")
    assert response.status == 200
    assert response.body == b""
    assert response.headers["content-length"] == str(len(b"body { color: green }"))


async def test_conditional_requests(tree: Path) -> None:
    async with TestClient(app(tree)) as client:
        first = await client.get("/css/site.css")
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            response = await client.get("/css/site.css", headers={"if-none-match": header})
            assert response.status == 304, header
            assert response.body == b""
            assert response.headers["etag"] == etag
        assert (await client.get("/css/site.css", headers={"if-none-match": '"nope"'})).status == 200
        assert (await client.get("/css/site.css", headers={"if-modified-since": modified})).status == 304
        assert (await client.head("/css/site.css", headers={"if-modified-since": modified})).status == 304
        old = formatdate(0, usegmt=True)
        assert (await client.get("/css/site.css", headers={"if-modified-since": old})).status == 200
        assert (await client.get("/css/site.css", headers={"if-modified-since": "garbage"})).status == 200
        # If-None-Match wins over If-Modified-Since
        both = {"if-none-match": '"nope"', "if-modified-since": modified}
        assert (await client.get("/css/site.css", headers=both)).status == 200


async def test_modified_file_gets_a_new_etag(tree: Path) -> None:
    async with TestClient(app(tree)) as client:
        etag = (await client.get("/css/site.css")).headers["etag"]
        (tree / "css" / "site.css").write_text("body { color: red; margin: 0 }")
        response = await client.get("/css/site.css", headers={"if-none-match": etag})
    assert response.status == 200
    assert response.headers["etag"] != etag
    assert response.body == b"body { color: red; margin: 0 }"


async def test_big_files_are_streamed(tree: Path) -> None:
    async with TestClient(app(tree, stream_threshold=1024)) as client:
        response = await client.get("/big.bin")
    assert response.status == 200
    assert response.body == bytes(range(256)) * 2000
    assert response.headers["content-length"] == str(512000)
    assert response.headers["content-type"] == "application/octet-stream"


async def test_directories_serve_their_index(tree: Path) -> None:
    async with TestClient(app(tree)) as client:
        root = await client.get("/")
        docs = await client.get("/docs/")
        redirect = await client.get("/docs?x=1")
        empty = await client.get("/empty/")
    assert root.body == b"<h1>home</h1>" and root.headers["content-type"] == "text/html"
    assert docs.body == b"<h1>docs</h1>"
    assert redirect.status == 308 and redirect.headers["location"] == "/docs/?x=1"
    assert (empty.status, empty.text) == (299, "fell through")


async def test_falls_through_to_routes_and_other_methods(tree: Path) -> None:
    async with TestClient(app(tree)) as client:
        assert (await client.get("/hello")).text == "hello route"
        assert (await client.get("/missing.css")).text == "fell through"
        post = await client.post("/css/site.css")
    assert (post.status, post.text) == (299, "fell through")


async def test_prefix(tree: Path) -> None:
    async with TestClient(app(tree, "/static/")) as client:
        assert (await client.get("/static/css/site.css")).body == b"body { color: green }"
        assert (await client.get("/static/hello")).text == "hello route"
        assert (await client.get("/css/site.css")).text == "fell through"
        assert (await client.get("/staticcss/site.css")).text == "fell through"
        assert (await client.get("/static")).headers["location"] == "/static/"
        assert (await client.get("/static/")).body == b"<h1>home</h1>"


async def test_percent_in_real_file_names(tree: Path) -> None:
    async with TestClient(app(tree)) as client:
        response = await client.get("/a%20b%2520c.txt")  # the server decodes once: "/a b%20c.txt"
    assert response.body == b"odd name"


async def test_symlink_inside_root_is_served(tree: Path) -> None:
    async with TestClient(app(tree)) as client:
        assert (await client.get("/inside_link.css")).body == b"body { color: green }"


TRAVERSALS = [
    "/../secret.txt",
    "/css/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/..%2fsecret.txt",
    "/..%2Fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/css/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/%252e%252e/secret.txt",
    "/%252e%252e%252fsecret.txt",
    "/..%252fsecret.txt",
    "/%25252e%25252e%25252fsecret.txt",
    "/..\\secret.txt",
    "/..%5csecret.txt",
    "/..%255csecret.txt",
    "/css%5c..%5c..%5csecret.txt",
    "/%00secret.txt",
    "/css/site.css%00.html",
    "/%2500secret.txt",
    "/./css/site.css",
    "//etc/passwd",
    "/%2fetc/passwd",
    "/%252fetc/passwd",
    "/escape.txt",
    "/escape_dir/",
    "/escape_dir/index.html",
]


@pytest.mark.parametrize("prefix", ["/", "/static"])
@pytest.mark.parametrize("path", TRAVERSALS)
async def test_traversal_is_refused(tree: Path, prefix: str, path: str) -> None:
    mount = "" if prefix == "/" else prefix
    async with TestClient(app(tree, prefix)) as client:
        response = await client.get(mount + path)
    assert response.status == 404, (path, response)
    assert SECRET not in response.body


@pytest.mark.parametrize("prefix", ["/", "/static"])
async def test_absolute_path_to_outside_file_is_refused(tree: Path, prefix: str) -> None:
    outside = str(tree.parent / "secret.txt")
    mount = "" if prefix == "/" else prefix
    async with TestClient(app(tree, prefix)) as client:
        for path in (
            mount + outside,
            mount + "/" + outside,
            mount + "/%2f" + outside.lstrip("/"),
            mount + "/" + outside.replace("/", "%2f"),
        ):
            response = await client.get(path)
            assert SECRET not in response.body, path
            assert response.status in (404, 299), path


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError):
        wrap_static(tmp_path / "nope")


async def test_websocket_requests_fall_through(tree: Path) -> None:
    handler = apply_middleware(wrap_static(tree), wrap_routes([]))(standard_not_found)
    async with TestClient(build_server(handler)) as client:
        response = await client.get("/css/site.css")
        assert response.status == 200
        with pytest.raises(WebSocketDenied) as denied:
            async with client.websocket("/css/site.css"):
                pass
    assert denied.value.status == 404


# -- over real servers: what uvicorn and granian put in scope["path"] must not open a way out either -------
@pytest.fixture(scope="module")
def real_server(serve_app: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, str]:
    base = tmp_path_factory.mktemp("static-real")
    (base / "public").mkdir()
    (base / "public" / "a b.css").write_text("spaced")
    (base / "secret.txt").write_bytes(SECRET)
    return serve_app("static_files:app", SCALLION_STATIC_ROOT=str(base / "public")), str(base / "secret.txt")


async def raw_get(port: int, target: str) -> tuple[int, bytes]:
    """GET ``target`` exactly as written (no client-side normalisation); ``(status, whole response)``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    return int(data.split(b" ", 2)[1]), data


async def test_real_server_serves_and_refuses(real_server: tuple[Any, str]) -> None:
    server, secret_path = real_server
    status, data = await raw_get(server.port, "/static/a%20b.css")
    assert status == 200 and data.endswith(b"spaced")
    attacks = [path.replace("/", "/static/", 1) for path in TRAVERSALS if "escape" not in path]
    attacks += ["/static" + secret_path, "/static/" + secret_path.replace("/", "%2f")]
    for target in attacks:
        status, data = await raw_get(server.port, target)
        assert status in (400, 404), (server.kind, target, data[:200])
        assert SECRET not in data, (server.kind, target)
