"""python-telegram-bot's networking on aiohttp instead of httpx.

PTB lets an application bring its own HTTP client by subclassing `telegram.request.BaseRequest`
(https://docs.python-telegram-bot.org/en/stable/telegram.request.baserequest.html); PTB keeps
building the calls and turning Bot API errors into its exceptions (`RetryAfter`, `Forbidden`,
…). Votz already ships aiohttp for Twilio, and per request it costs a fraction of the CPU of
httpx + httpcore: `bench/telegram.py` showed half of Votz's event loop inside httpx. Parameters
go as one JSON body (the Bot API accepts it); files, if any, as multipart.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData


def env_proxy(url: str) -> str | None:
    """The proxy the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) sets for `url`, if any."""
    parts = urlsplit(url)
    proxy = getproxies().get(parts.scheme)
    return None if not proxy or proxy_bypass(parts.hostname or "") else proxy


class AiohttpRequest(BaseRequest):
    """A `BaseRequest` on one aiohttp session with a bounded connection pool."""

    def __init__(self, *, connection_pool_size: int = 8, read_timeout: float | None = 5.0,
                 write_timeout: float | None = 5.0, connect_timeout: float | None = 5.0,
                 pool_timeout: float | None = 1.0) -> None:
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            # TLS is checked against the system's certificate store. Proxies: see _proxy.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                headers={"User-Agent": self.USER_AGENT})

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _proxy(self, url: str) -> str | None:
        """HTTP(S)_PROXY and NO_PROXY apply, as they did with PTB's httpx client.

        Read once per host: aiohttp's `trust_env` would look them (and ~/.netrc) up again in a
        worker thread on every request, two thread hops per message.
        """
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "")
        if key not in self._proxies:
            self._proxies[key] = env_proxy(url)
        return self._proxies[key]

    @staticmethod
    def _timeout(value: Any, default: float | None) -> float | None:
        # PTB passes DEFAULT_NONE (a DefaultValue) when the call gives no timeout.
        if isinstance(value, type(BaseRequest.DEFAULT_NONE)):
            return default
        return float(value) if value is not None else None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        read = self._timeout(read_timeout, self._read_timeout)
        write = self._timeout(write_timeout, self._write_timeout)
        connect = self._timeout(connect_timeout, self._connect_timeout)
        pool = self._timeout(pool_timeout, self._pool_timeout)
        # aiohttp has no separate write timeout: the whole call gets the sum of them all. Its
        # `connect` covers waiting for a free connection *and* opening one, so it gets both.
        parts = (read, write, pool, connect)
        total = None if None in parts else sum(p for p in parts if p is not None)
        waiting = None if pool is None or connect is None else pool + connect
        timeout = aiohttp.ClientTimeout(total=total, connect=waiting, sock_connect=connect,
                                        sock_read=read)
        kwargs: dict[str, Any] = {}
        if request_data is not None:
            files = request_data.multipart_data
            if files:
                form = aiohttp.FormData()
                for name, value in request_data.json_parameters.items():
                    form.add_field(name, value)
                for name, part in files.items():
                    filename, content, *mime = part  # (name, bytes or file, [mimetype])
                    form.add_field(name, content, filename=filename,
                                   content_type=mime[0] if mime else None)
                kwargs["data"] = form
            elif request_data.parameters:
                kwargs["data"] = json.dumps(request_data.parameters)
                kwargs["headers"] = {"Content-Type": "application/json"}
        try:
            async with self._session.request(method, url, timeout=timeout,
                                             proxy=self._proxy(url), **kwargs) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc
