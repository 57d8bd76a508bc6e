"""Raw ASGI requests for tests: bytes on the wire exactly as a server hands them to the app,
and a way to see what the app does before (or without) reading the body."""

from typing import Any

from asgiref.testing import ApplicationCommunicator


def http_scope(method: str, path: str, headers: list[tuple[bytes, bytes]] = (), query: bytes = b"") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


async def read_response(
    communicator: ApplicationCommunicator, wait: float = 5
) -> tuple[int, dict[bytes, bytes], bytes]:
    start = await communicator.receive_output(wait)
    assert start["type"] == "http.response.start", start
    body = b""
    while True:
        message = await communicator.receive_output(wait)
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return start["status"], {k.lower(): v for k, v in start["headers"]}, body


async def asgi_request(
    app: Any, method: str, path: str, *, headers: list[tuple[bytes, bytes]] = (), body: bytes = b""
) -> tuple[int, dict[bytes, bytes], bytes]:
    communicator = ApplicationCommunicator(app, http_scope(method, path, list(headers)))
    await communicator.send_input({"type": "http.request", "body": body, "more_body": False})
    response = await read_response(communicator)
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(timeout=5)
    return response
