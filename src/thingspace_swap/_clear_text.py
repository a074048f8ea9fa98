"""The guard against sending credentials in clear text: a plain ``http`` base URL only to a
loopback host, and never through a proxy."""

from __future__ import annotations

import urllib.request
from typing import Any

import httpcore
import httpx

from .config import _loopback
from .errors import InsecureTransportError

__all__ = ["refuse_clear_text"]

_PROXY_POOLS = (
    httpcore.HTTPProxy,
    httpcore.AsyncHTTPProxy,
    httpcore.SOCKSProxy,
    httpcore.AsyncSOCKSProxy,
)
_NETWORK = (httpx.HTTPTransport, httpx.AsyncHTTPTransport)
_POOLS = (httpcore.ConnectionPool, httpcore.AsyncConnectionPool)


def refuse_clear_text(http: httpx.Client | httpx.AsyncClient, base_url: str) -> None:
    """Raise [InsecureTransportError][thingspace_swap.errors.InsecureTransportError] when ``http``
    would carry the credentials of requests to ``base_url`` in clear text beyond this machine.

    Every request carries a credential (the app secret, the password or the tokens), so a plain
    ``http`` base URL is allowed only to a loopback host, sent directly: never through a proxy,
    which would read the request whatever the proxy's own scheme. An ``https`` base URL is always
    fine: httpx tunnels it through a proxy with ``CONNECT`` and TLS runs end to end, so the proxy
    sees only the host and port. The proxy is the one httpx itself picks for the URL: from the
    environment (``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``... when ``trust_env``), or from a
    client's ``proxy=`` or ``mounts=``. A transport of the caller's (the simulator's, a mock)
    reaches no network and is left alone.
    """
    url = httpx.URL(base_url)
    if url.scheme != "http":
        return
    transport, proxy = _route(http, url)
    if proxy is not None:
        via = f"the proxy {proxy}" if proxy else "a proxy"
        raise InsecureTransportError(
            f"refusing to send credentials through {via} in clear text: {url.host} is plain "
            f"http, so the proxy would read the app secret, the password and the tokens; use "
            f"https, or reach {url.host} directly (add it to NO_PROXY)",
            proxy=proxy or None,
        )
    if isinstance(transport, _NETWORK) and not _loopback(url.host):
        raise InsecureTransportError(
            f"refusing plain http to {url.host}: credentials would be sent unencrypted; use https"
        )


def _route(http: httpx.Client | httpx.AsyncClient, url: httpx.URL) -> tuple[object, str | None]:
    """The transport ``http`` sends ``url``'s requests through, and the proxy on the way
    (``""`` when its URL is unknown; None when there is none)."""
    route = getattr(http, "_transport_for_url", None)
    if not callable(route):  # a future httpx: judge from the environment, conservatively
        return None, _environment_proxy(url) if http.trust_env else None
    transport = route(url)
    pool = getattr(transport, "_pool", None)
    if isinstance(pool, _PROXY_POOLS):
        return transport, _describe(getattr(pool, "_proxy_url", None))
    if isinstance(transport, _NETWORK) and not isinstance(pool, _POOLS):
        return transport, _environment_proxy(url) if http.trust_env else None
    return transport, None


def _describe(proxy: Any) -> str:
    """A proxy's ``scheme://host:port``, never its user or password ('' when unknown)."""
    try:
        scheme, host, port = proxy.scheme.decode(), proxy.host.decode(), proxy.port
    except (AttributeError, UnicodeDecodeError):
        return ""
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def _environment_proxy(url: httpx.URL) -> str | None:
    """The proxy the environment names for ``url``, unless ``NO_PROXY`` is ``*`` or names its
    host exactly (stricter than httpx, for when httpx cannot be asked)."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    bypass = {host.strip().lower() for host in proxies.get("no", "").split(",")}
    if not proxy or "*" in bypass or url.host.lower() in bypass:
        return None
    try:
        parsed = httpx.URL(proxy if "://" in proxy else f"http://{proxy}")
    except httpx.InvalidURL:
        return ""
    return f"{parsed.scheme}://{parsed.host}" + (f":{parsed.port}" if parsed.port else "")
