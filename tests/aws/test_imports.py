"""The AWS extra stays optional: the core never imports it, nor boto3."""

from __future__ import annotations

import subprocess
import sys

import pytest

import thingspace_swap.aws


def test_the_core_imports_no_boto3() -> None:
    code = (
        "import sys, thingspace_swap, thingspace_swap.swap, thingspace_swap.swap.orchestrator\n"
        "import thingspace_swap.aws\n"  # the package itself is lazy too
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore'))\n"
        "assert not loaded, loaded\n"
        "assert 'thingspace_swap.backends.aws.sqs' not in sys.modules\n"
        "from thingspace_swap.aws import SqsQueue\n"
        "assert 'boto3' not in sys.modules and 'botocore' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_lazy_exports() -> None:
    for name in thingspace_swap.aws.__all__:
        assert getattr(thingspace_swap.aws, name).__name__ == name
    assert set(thingspace_swap.aws.__all__) <= set(dir(thingspace_swap.aws))
    with pytest.raises(AttributeError, match="Nope"):
        thingspace_swap.aws.Nope  # noqa: B018


def test_the_documented_module_paths_are_aliases_of_the_adapters() -> None:
    from thingspace_swap.aws import dynamodb, tokens
    from thingspace_swap.backends import aws

    assert dynamodb.DynamoStore is aws.DynamoStore
    assert dynamodb.create_table is aws.create_table
    assert dynamodb.table_definition is aws.table_definition
    assert tokens.DynamoTokenCache is aws.DynamoTokenCache
    for name in aws.__all__:
        assert getattr(thingspace_swap.aws, name) is getattr(aws, name)
