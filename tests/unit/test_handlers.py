"""The fence on kopf's own HTTP session (handlers.fenced_session).

kopf writes outside our handlers (its bookkeeping annotations, the events it posts), so leader
election fences its session too. Matrix: a write method runs the fence before the request leaves;
a read does not; a fence that refuses stops the request before the server sees it; and kopf's
APIContext uses the session it is given as it is (the seam this relies on, kopf 1.45.2).
"""

from __future__ import annotations

import kopf
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from kopf._cogs.clients import auth

from wsfleet_operator.handlers import fenced_session


class Refused(Exception):
    pass


async def _server(seen: list[str]) -> TestServer:
    async def any_(request: web.Request) -> web.Response:
        seen.append(request.method)
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", any_)
    server = TestServer(app)
    await server.start_server()
    return server


async def test_writes_pass_the_fence_and_reads_do_not() -> None:
    seen: list[str] = []
    fenced: list[int] = []
    server = await _server(seen)
    info = kopf.ConnectionInfo(server=str(server.make_url("/")))
    session = fenced_session(info, lambda: fenced.append(1)).aiohttp_session
    try:
        for method in ("GET", "PATCH", "POST", "PUT", "DELETE", "HEAD"):
            async with session.request(method, server.make_url("/apis/x")):
                pass
    finally:
        await session.close()
        await server.close()
    assert seen == ["GET", "PATCH", "POST", "PUT", "DELETE", "HEAD"]
    assert len(fenced) == 4


async def test_a_closed_fence_stops_the_write_before_it_is_sent() -> None:
    seen: list[str] = []
    server = await _server(seen)

    def closed() -> None:
        raise Refused

    session = fenced_session(kopf.ConnectionInfo(server=str(server.make_url("/"))), closed).aiohttp_session
    try:
        with pytest.raises(Refused):
            await session.patch(server.make_url("/apis/x"), json={})
        async with session.get(server.make_url("/apis/x")):
            pass
    finally:
        await session.close()
        await server.close()
    assert seen == ["GET"], "the patch never reached the server"


async def test_kopf_uses_the_session_it_is_given() -> None:
    """kopf's client context must hand our session to every request, hooks and all; a kopf that
    wrapped or replaced it would leave its own writes unfenced."""
    info = fenced_session(kopf.ConnectionInfo(server="https://127.0.0.1:1"), lambda: None)
    context = auth.APIContext(info)
    try:
        assert context.session is info.aiohttp_session
        assert context.server == "https://127.0.0.1:1"
    finally:
        await context.close()
