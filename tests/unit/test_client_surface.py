"""The clients' documented surface: the resources named on the clients' reference page, the
driver that runs their flows, and the public paths of the transport."""

from __future__ import annotations

import ast
import inspect
import re

import pytest

import thingspace_swap.client
import thingspace_swap.transports
from thingspace_swap import AsyncThingSpaceClient, Credentials, ThingSpaceClient
from thingspace_swap._core.endpoint import endpoint, paginated
from thingspace_swap.swap.ports import ThingSpace
from thingspace_swap.swap.thingspace import ThingSpaceFlows


def _resource_docs() -> dict[str, str]:
    """The docstring under each annotated attribute of the clients' shared base."""
    tree = ast.parse(inspect.getsource(thingspace_swap.client))
    base = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "_Client")
    docs = {}
    for node, after in zip(base.body, base.body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            assert isinstance(after, ast.Expr)
            assert isinstance(after.value, ast.Constant)
            docs[node.target.id] = str(after.value.value)
    return docs


def test_each_resource_attribute_names_all_its_methods():
    docs = _resource_docs()
    assert set(docs) == {"devices", "plans", "accounts", "requests", "callbacks", "session"}
    hints = thingspace_swap.client._Client.__annotations__
    for name, doc in docs.items():
        cls = getattr(thingspace_swap.resources, hints[name].split("[")[0])
        methods = {
            attr for attr, value in vars(cls).items() if isinstance(value, (endpoint, paginated))
        }
        assert set(re.findall(r"`(\w+)`", doc)) == methods, name
        assert f"[{cls.__name__}][thingspace_swap.resources.{cls.__name__}]" in doc


@pytest.mark.parametrize("cls", [ThingSpaceClient, AsyncThingSpaceClient])
def test_the_driver_runs_the_resources_flows(cls: type):
    client = cls(Credentials("k", "s", "u", "p"), base_url="https://thingspace.test")
    assert client.driver is client.devices._driver is client.session._driver
    flows: ThingSpace = ThingSpaceFlows(client)
    assert flows.driver is client.driver
    if isinstance(client, ThingSpaceClient):
        client.close()  # no session: nothing is sent


def test_the_transport_keeps_its_public_paths():
    assert thingspace_swap.client.AiohttpTransport is thingspace_swap.transports.AiohttpTransport
    assert "AiohttpTransport" in thingspace_swap.client.__all__
