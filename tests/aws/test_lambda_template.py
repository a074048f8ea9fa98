"""The SAM template in ``deploy/``: cfn-lint passes, and the rules the code relies on hold (the
table is ``table_definition()``, visibility timeout at least six times the worker's timeout,
partial batch responses, handlers that exist, least-privilege roles that docs/aws.md lists)."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from thingspace_swap.aws import table_definition

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "template.yaml"
FUNCTIONS = {
    "IntakeFunction": "intake_handler",
    "WorkerFunction": "worker_handler",
    "CallbackFunction": "callback_handler",
    "ReconcilerFunction": "reconciler_handler",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    from cfnlint.decode import decode_str  # reads !Ref, !GetAtt, !Sub...

    data, problems = decode_str(TEMPLATE.read_text())
    assert not problems, problems
    assert isinstance(data, dict)
    return data


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {n: r for n, r in template["Resources"].items() if r["Type"] == kind}


def test_cfn_lint_finds_nothing() -> None:
    import cfnlint.api

    matches = cfnlint.api.lint_file(TEMPLATE)
    assert [str(m) for m in matches] == []


def test_cfn_lint_command_line_passes() -> None:
    command = Path(sys.executable).with_name("cfn-lint")
    if not command.exists():
        pytest.skip("no cfn-lint script beside this Python")
    import subprocess

    done = subprocess.run(
        [str(command), str(TEMPLATE)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_table_is_table_definition(template: dict[str, Any]) -> None:
    table = template["Resources"]["SwapTable"]["Properties"]
    expected = table_definition()
    assert {key: table[key] for key in expected} == expected
    assert template["Resources"]["SwapTable"]["DeletionPolicy"] == "Retain"


def test_visibility_timeout_is_at_least_six_worker_timeouts(template: dict[str, Any]) -> None:
    worker = template["Resources"]["WorkerFunction"]["Properties"]
    timeout = worker.get("Timeout", template["Globals"]["Function"].get("Timeout", 3))
    queues = resources(template, "AWS::SQS::Queue")
    work_queues = [q for name, q in queues.items() if name != "DeadLetterQueue"]
    assert len(work_queues) == 2
    for queue in work_queues:
        assert int(queue["Properties"]["VisibilityTimeout"]) >= 6 * int(timeout)
        redrive = queue["Properties"]["RedrivePolicy"]
        assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
        assert redrive["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    assert all(q["Properties"]["FifoQueue"] is True for q in queues.values())
    assert template["Parameters"]["MaxReceiveCount"]["Default"] == 5


def test_the_worker_reports_partial_batch_failures(template: dict[str, Any]) -> None:
    events = template["Resources"]["WorkerFunction"]["Properties"]["Events"]
    sqs = [e["Properties"] for e in events.values() if e["Type"] == "SQS"]
    assert sqs == [
        {
            "Queue": {"Fn::GetAtt": ["SwapQueue", "Arn"]},
            "BatchSize": 10,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": {"Ref": "WorkerMaxConcurrency"}},
        }
    ]
    mappings = resources(template, "AWS::Lambda::EventSourceMapping")
    assert [m["Properties"]["FunctionResponseTypes"] for m in mappings.values()] == [
        ["ReportBatchItemFailures"]
    ]
    high = mappings["HighPriorityEventSource"]["Properties"]
    assert high["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "WorkerMaxConcurrency"}}
    worker = template["Resources"]["WorkerFunction"]["Properties"]
    assert worker["Environment"]["Variables"] == {
        "SWAP_WORKER_CONCURRENCY": {"Ref": "WorkerConcurrency"}
    }
    assert mappings["HighPriorityEventSource"]["Properties"]["EventSourceArn"] == {
        "Fn::GetAtt": ["HighPrioritySwapQueue", "Arn"]
    }


def test_handlers_exist_and_functions_are_wired(template: dict[str, Any]) -> None:
    functions = resources(template, "AWS::Serverless::Function")
    assert set(functions) == set(FUNCTIONS)
    assert template["Globals"]["Function"]["Runtime"].startswith("python3.")
    for name, handler in FUNCTIONS.items():
        properties = functions[name]["Properties"]
        module, _, attribute = properties["Handler"].rpartition(".")
        assert attribute == handler
        assert callable(getattr(importlib.import_module(module), attribute))
        assert properties["Role"] == {"Fn::GetAtt": [name.replace("Function", "Role"), "Arn"]}
    routes = {
        (e["Properties"]["Method"], e["Properties"]["Path"]): (name, e["Properties"].get("Auth"))
        for name, f in functions.items()
        for e in f["Properties"].get("Events", {}).values()
        if e["Type"] == "HttpApi"
    }
    iam = {"Authorizer": "AWS_IAM"}
    assert routes == {
        ("POST", "/batches"): ("IntakeFunction", iam),
        ("GET", "/batches/{id}"): ("IntakeFunction", iam),
        ("POST", "/batches/{id}/retry"): ("IntakeFunction", iam),
        ("POST", "/batches/{id}/cancel"): ("IntakeFunction", iam),
        ("POST", "/thingspace/callbacks"): ("CallbackFunction", None),
    }
    schedule = functions["ReconcilerFunction"]["Properties"]["Events"]["Schedule"]
    assert schedule["Type"] == "Schedule"


def test_the_environment_is_what_the_handlers_read(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    source = (ROOT / "src/thingspace_swap/aws/config.py").read_text()
    for name in variables:
        assert f'"{name}"' in source, name
    assert {"SWAP_QUEUE_URL", "SWAP_DLQ_URL", "SWAP_TABLE", "THINGSPACE_SECRET_ARN"} <= set(
        variables
    )


def test_the_dead_letter_alarm(template: dict[str, Any]) -> None:
    alarm = template["Resources"]["DeadLetterAlarm"]["Properties"]
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}
    ]


def role_statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    policies = template["Resources"][role]["Properties"]["Policies"]
    return [s for p in policies for s in p["PolicyDocument"]["Statement"]]


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_roles_grant_only_named_actions_on_the_stacks_resources(
    template: dict[str, Any],
) -> None:
    docs = (ROOT / "docs" / "aws.md").read_text()
    for function in FUNCTIONS:
        role = function.replace("Function", "Role")
        section = docs.split(f"### {function}", 1)[1].split("\n### ", 1)[0]
        documented = set(re.findall(r"`([a-z0-9]+:[A-Za-z]+)`", section))
        granted: set[str] = set()
        for statement in role_statements(template, role):
            assert statement["Effect"] == "Allow"
            actions = listed(statement["Action"])
            assert all("*" not in a for a in actions), (role, actions)
            for resource in listed(statement["Resource"]):
                assert resource != "*", (role, statement)
                assert isinstance(resource, dict), (role, resource)  # a reference, never a name
            granted |= set(actions)
        assert granted == documented, (function, granted ^ documented)
    worker = {a for s in role_statements(template, "WorkerRole") for a in listed(s["Action"])}
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"} <= worker
    intake = {a for s in role_statements(template, "IntakeRole") for a in listed(s["Action"])}
    assert not any(a.startswith("sqs:Receive") or a == "sqs:DeleteMessage" for a in intake)


def test_the_layer_requirements_are_the_projects(template: dict[str, Any]) -> None:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        pytest.skip("needs tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["aws"])
    lines = (ROOT / "deploy" / "requirements.txt").read_text().splitlines()
    assert {line for line in lines if line and not line.startswith("#")} == wanted
    layer = template["Resources"]["DependenciesLayer"]
    assert layer["Metadata"]["BuildMethod"] == template["Globals"]["Function"]["Runtime"]


def test_every_function_shares_the_accounts_rate_limit(template: dict[str, Any]) -> None:
    """The rate reaches every function (they all talk to ThingSpace), which may update the
    limiter's item, and the table deletes idle accounts' items by their ``ttl``."""
    parameter = template["Parameters"]["AccountRateLimit"]
    assert parameter["Type"] == "Number"
    assert parameter["MinValue"] == 0
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["THINGSPACE_RATE_LIMIT"] == {"Ref": "AccountRateLimit"}
    functions = resources(template, "AWS::Serverless::Function")
    for name, function in functions.items():
        overridden = function["Properties"].get("Environment", {}).get("Variables", {})
        assert "THINGSPACE_RATE_LIMIT" not in overridden, name
        role = name.replace("Function", "Role")
        granted = {a for s in role_statements(template, role) for a in listed(s["Action"])}
        assert "dynamodb:UpdateItem" in granted, role
        # a change's first submission is written with a ConditionCheck on its batch
        assert "dynamodb:ConditionCheckItem" in granted, role
    table = template["Resources"]["SwapTable"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
