"""Resources are written once; the descriptors below give each method its sync or async face.

A resource method builds a flow (or a pager) and returns it. Accessed on a resource of a sync
client, the method runs that flow and returns its result; on an async client it returns a
coroutine. Type checkers see the right signature for each (``Resource[Sync]`` vs
``Resource[Async]``), so nothing is written twice.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

import attrs

from ..errors import DecodeError, InvalidRequestError
from .commands import Flow
from .operations import Call

if TYPE_CHECKING:
    from .engine import Engine

P = ParamSpec("P")
T = TypeVar("T")
Item = TypeVar("Item")
Page = TypeVar("Page")


class Sync:
    """Marks resources of [ThingSpaceClient][thingspace_swap.ThingSpaceClient]."""


class Async:
    """Marks resources of [AsyncThingSpaceClient][thingspace_swap.AsyncThingSpaceClient]."""


Mode = TypeVar("Mode", Sync, Async)


@attrs.frozen
class Pager(Generic[Page, Item]):
    """How to walk a paged listing: the first call, the next one after a page, a page's items."""

    first: Call[Page]
    next_call: Callable[[Call[Page], Page], Call[Page] | None]
    items: Callable[[Page], list[Item]]


class Driver(Protocol):
    """Runs flows: the sync driver returns their results, the async one coroutines."""

    def run(self, flow: Flow[Any]) -> Any:
        """Run ``flow`` to its end (sync) or return a coroutine that does (async)."""
        ...

    def iterate(self, pager: Pager[Any, Any]) -> Any:
        """Walk every page of ``pager``: an iterator (sync) or an async iterator (async)."""
        ...


class Faced(Generic[Mode]):
    """Anything whose methods are flows run by a sync or an async driver."""

    _driver: Driver


class Resource(Faced[Mode]):
    """A group of operations (``client.devices``, ``client.plans``...)."""

    def __init__(self, driver: Driver, engine: Engine, account_name: str | None) -> None:
        self._driver = driver
        self._engine = engine
        self._account_name = account_name

    def _account(self, account_name: str | None) -> str:
        name = account_name or self._account_name
        if not name:
            raise InvalidRequestError("no account name: pass account_name= or set it on the client")
        return name

    def _call(self, call: Call[T]) -> Flow[T]:
        return self._engine.call(call)


class endpoint(Generic[P, T]):
    """Turns a flow-building method into a sync or async method.

    The method is made once per resource (on first access) and kept in the resource's
    ``__dict__``, which shadows this non-data descriptor from then on.
    """

    _name: str | None = None

    def __init__(self, build: Callable[Concatenate[Any, P], Flow[T]]) -> None:
        self._build = build
        functools.update_wrapper(self, build)  # type: ignore[arg-type]

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    def flow(self, obj: Faced[Any], /, *args: P.args, **kwargs: P.kwargs) -> Flow[T]:
        """The flow behind the method, to compose into a larger flow (``yield from``)."""
        return self._build(obj, *args, **kwargs)

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> endpoint[P, T]: ...
    @overload
    def __get__(self, obj: Faced[Sync], owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, obj: Faced[Async], owner: type[Any]) -> Callable[P, Awaitable[T]]: ...
    def __get__(self, obj: Faced[Any] | None, owner: type[Any]) -> Any:
        if obj is None:
            return self
        build = self._build

        @functools.wraps(build)
        def method(*args: Any, **kwargs: Any) -> Any:
            return obj._driver.run(build(obj, *args, **kwargs))

        _keep(obj, self._name, method)
        return method


class paginated(Generic[P, Item]):
    """Turns a pager-building method into an iterator (sync) or async iterator (async); made
    once per resource, like ``endpoint``'s methods."""

    _name: str | None = None

    def __init__(self, build: Callable[Concatenate[Any, P], Pager[Any, Item]]) -> None:
        self._build = build
        functools.update_wrapper(self, build)  # type: ignore[arg-type]

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    def pager(self, obj: Faced[Any], /, *args: P.args, **kwargs: P.kwargs) -> Pager[Any, Item]:
        """The pager behind the method, to walk pages inside a larger flow."""
        return self._build(obj, *args, **kwargs)

    def collect(self, obj: Resource[Any], /, *args: P.args, **kwargs: P.kwargs) -> Flow[list[Item]]:
        """A flow of every item, page after page, to compose into a larger flow (``yield from``)."""
        return _collect(obj, self._build(obj, *args, **kwargs))

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> paginated[P, Item]: ...
    @overload
    def __get__(self, obj: Faced[Sync], owner: type[Any]) -> Callable[P, Iterator[Item]]: ...
    @overload
    def __get__(self, obj: Faced[Async], owner: type[Any]) -> Callable[P, AsyncIterator[Item]]: ...
    def __get__(self, obj: Faced[Any] | None, owner: type[Any]) -> Any:
        if obj is None:
            return self
        build = self._build

        @functools.wraps(build)
        def method(*args: Any, **kwargs: Any) -> Any:
            return obj._driver.iterate(build(obj, *args, **kwargs))

        _keep(obj, self._name, method)
        return method


def _keep(obj: object, name: str | None, method: Callable[..., Any]) -> None:
    """Cache ``method`` on ``obj`` under ``name`` (where ``obj`` has a ``__dict__``)."""
    if name is not None:
        namespace = getattr(obj, "__dict__", None)
        if namespace is not None:
            namespace[name] = method


def cursor_guard(previous: int | None, cursor: int | None, more: bool) -> None:
    """Refuse a cursor that would loop forever: missing while more data is promised, or not
    moving forward."""
    if more and cursor is None:
        raise DecodeError("ThingSpace promised more devices but the page has no DeviceId cursor")
    if more and previous is not None and cursor is not None and cursor <= previous:
        raise DecodeError(f"device listing cursor did not advance ({previous} -> {cursor})")


def _collect(resource: Resource[Any], pager: Pager[Any, Item]) -> Flow[list[Item]]:
    """Walk every page of ``pager`` inside a flow and return all items."""
    items: list[Item] = []
    call: Call[Any] | None = pager.first
    while call is not None:
        page = yield from resource._call(call)
        items.extend(pager.items(page))
        call = pager.next_call(call, page)
    return items
