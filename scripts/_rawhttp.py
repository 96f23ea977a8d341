"""The benchmarks' load generator: a minimal HTTP/1.1 keep-alive client over asyncio streams.

Hand-written because the load generator must not eat the two cores it measures: httpx spends about 2 ms of
CPU per request, this a few hundredths. It speaks just what gridmap answers: Content-Length or chunked
bodies, and ``Connection: close`` (it reconnects, as a browser would).
"""

from __future__ import annotations

import asyncio


class Conn:
    """One keep-alive connection; ``headers`` go with every request (e.g. the bearer token)."""

    def __init__(self, port: int, host: str = "127.0.0.1", headers: dict | None = None) -> None:
        self.host, self.port = host, port
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, payload: bytes) -> tuple[int, bytes]:
        """POST a JSON body; the status and the body."""
        return await self.request("POST", path, payload, {"Content-Type": "application/json"})

    async def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, bytes]:
        """Send one request and read its whole answer: the status and the body."""
        assert self.reader is not None and self.writer is not None, "open() first"
        extra = self.extra + "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("closed")
        length, chunked, close = 0, False, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            k, _, v = line.decode("latin-1").partition(":")
            k, v = k.strip().lower(), v.strip().lower()
            if k == "content-length":
                length = int(v)
            elif k == "transfer-encoding":
                chunked = "chunked" in v
            elif k == "connection":
                close = v == "close"
        data = await (self._chunks() if chunked else self.reader.readexactly(length))
        if close:
            self.close()
            await self.open()
        return int(status_line.split()[1]), data

    async def _chunks(self) -> bytes:
        assert self.reader is not None
        parts = []
        while size := int((await self.reader.readline()).split(b";")[0], 16):
            parts.append(await self.reader.readexactly(size))
            await self.reader.readline()
        await self.reader.readline()
        return b"".join(parts)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
