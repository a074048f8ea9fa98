"""The Lambda setup of ``physical_limit.py``: eight worker processes on one moto server.

Not a benchmark itself. ``run_lambda`` starts moto's server in its own process (SQS FIFO
queues, the DynamoDB table, an SNS topic), then these processes of this script, each
``Handlers.from_env()`` as a Lambda container builds them (token cache and login guard in the
table, the account limit through ``THINGSPACE_RATE_LIMIT``):

* ``intake FILE``: ``POST /batches`` with the items, through ``Handlers.intake``;
* ``worker`` (eight): what the SQS event source mapping does, one poll of up to 10 records
  after another (the high-priority queue first), each event to ``Handlers.worker``, and the
  records it reports done deleted;
* ``callbacks PORT``: ThingSpace's POSTs as API Gateway events to ``Handlers.callback``;
* ``reconciler SECONDS``: ``Handlers.reconciler`` on a schedule, as EventBridge calls it.

The processes stop when the file named by ``BENCH_STOP_FILE`` appears.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from _limit_plan import CALLBACK_PASSWORD, CALLBACK_USER

if TYPE_CHECKING:
    from _common import SimProcess
    from _limit_plan import Plan

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve()


def _load(name: str, path: Path) -> ModuleType:
    """A test helper by its path (``tests`` is not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _events() -> ModuleType:
    return _load("bench_events", ROOT / "tests" / "events" / "__init__.py")


def _stopped() -> bool:
    return Path(os.environ["BENCH_STOP_FILE"]).exists()


# The processes --------------------------------------------------------------------------------


def _handlers() -> Any:
    from thingspace_swap.aws.lambda_handlers import Handlers

    return Handlers.from_env()


def intake(path: str) -> int:
    events = _events()
    items = json.loads(Path(path).read_text())
    event = events.http("apigw_http_create_batch.json", body={"items": items})
    answer = _handlers().intake(event, events.LambdaContext(900))
    body = json.loads(answer["body"])
    print(json.dumps({"status": answer["statusCode"], "batch_id": body.get("batch_id")}))
    return 0 if answer["statusCode"] in (200, 201, 202) else 1


def worker() -> int:
    from thingspace_swap.aws.config import boto_client

    events = _events()
    handlers = _handlers()
    urls = [u for u in (os.environ.get("SWAP_HIGH_QUEUE_URL"), os.environ["SWAP_QUEUE_URL"]) if u]
    source = events.EventSource(boto_client("sqs"), urls)
    while not _stopped():
        event = source.poll(wait=1)
        if event is None:
            continue
        answer = handlers.worker(event, events.LambdaContext(300))
        failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
        for record in event["Records"]:  # Lambda deletes the records reported done
            if record["messageId"] not in failed:
                url = next(u for u, arn in source.sources if arn == record["eventSourceARN"])
                source.sqs.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])
    return 0


def callbacks(port: str) -> int:
    events = _events()
    handlers = _handlers()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            event = events.http("apigw_http_callback.json", body=body.decode())
            answer = handlers.callback(event, events.LambdaContext())
            payload = answer.get("body", "").encode()
            self.send_response(int(answer["statusCode"]))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
    server.timeout = 0.5
    while not _stopped():
        server.handle_request()
    server.server_close()
    return 0


def reconciler(every: str) -> int:
    events = _events()
    handlers = _handlers()
    while not _stopped():
        handlers.reconciler(events.scheduled(), events.LambdaContext())
        deadline = time.monotonic() + float(every)
        while time.monotonic() < deadline and not _stopped():
            time.sleep(0.5)
    return 0


# The setup, for physical_limit.py -------------------------------------------------------------


def run_lambda(plan: Plan, sim: SimProcess, folder: Path) -> dict[str, Any]:
    """Moto, then intake, eight workers, the callback listener and the reconciler."""
    from _common import check_run, children_cpu, free_port

    moto = _load("bench_moto_server", ROOT / "tests" / "aws" / "moto_server.py")
    with ExitStack() as stack:
        endpoint = stack.enter_context(moto.moto_server_process())
        env, store = _aws(moto, endpoint, sim, plan, folder)
        items = folder / "items.json"
        items.write_text(json.dumps(plan.rows(sim)))
        children0 = children_cpu()
        started = time.perf_counter()
        port = free_port()
        url = f"http://127.0.0.1:{port}/thingspace/callbacks"
        roles = [["callbacks", str(port)], ["reconciler", str(plan.args.reconcile_every)]]
        roles += [["worker"]] * plan.args.lambda_workers
        procs = [_spawn(role, env, folder, n) for n, role in enumerate(roles)]
        try:
            _register(sim, url, env)
            done = check_run([sys.executable, str(SCRIPT), "intake", str(items)], env)
            batch_id = json.loads(done)["batch_id"]
            while (batch := store.get_batch(batch_id)) is not None and batch.completed_at is None:
                stopped = [n for n, p in enumerate(procs) if p.poll() is not None]
                if stopped:
                    log = next(folder.glob(f"lambda-{stopped[0]}-*.log")).read_text()
                    raise RuntimeError(f"Lambda process {stopped[0]} stopped: {log[-3000:]}")
                time.sleep(1.0)
            wall = time.perf_counter() - started
        finally:
            Path(env["BENCH_STOP_FILE"]).touch()
            codes = [p.wait(60) for p in procs]
        completed = sum(1 for c in store.changes(batch_id) if c.phase.value == "completed")
    return {
        "wall_seconds": round(wall, 1),
        "completed": completed,
        "cpu_seconds": round(children_cpu() - children0, 1),
        "worker_exit_codes": codes,
    }


def _spawn(role: list[str], env: dict[str, str], folder: Path, n: int) -> subprocess.Popen[bytes]:
    log = (folder / f"lambda-{n}-{role[0]}.log").open("w")
    command = [sys.executable, str(SCRIPT), *role]
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603


def _register(sim: SimProcess, url: str, env: dict[str, str]) -> None:
    """The callback registration, by a client of the Lambda runtime (tokens in the table)."""
    code = (
        "from thingspace_swap.aws.lambda_handlers import Handlers\n"
        "from thingspace_swap.swap import register_listener\n"
        "import sys\n"
        "runtime = Handlers.from_env().runtime\n"
        "register_listener(runtime.client, sys.argv[1], username=sys.argv[2], "
        "password=sys.argv[3])\n"
    )
    from _common import check_run

    check_run([sys.executable, "-c", code, url, CALLBACK_USER, CALLBACK_PASSWORD], env)


def _aws(
    moto: ModuleType, endpoint: str, sim: SimProcess, plan: Plan, folder: Path
) -> tuple[dict[str, str], Any]:
    """The table, queues and topic on moto; the functions' environment; a store to watch."""
    from thingspace_swap.aws import DynamoStore, create_queues, create_table

    sqs, dynamodb, sns = (moto.client(endpoint, name) for name in ("sqs", "dynamodb", "sns"))
    create_table(dynamodb, "swap")
    queues = create_queues(sqs, "swap", fifo=True, high_priority=True, visibility_timeout=360)
    topic = sns.create_topic(Name="swap-events")["TopicArn"]
    creds = sim.credentials
    env = {k: v for k, v in os.environ.items() if not k.startswith(("THINGSPACE_", "AWS_"))}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        SWAP_QUEUE_URL=queues.url,
        SWAP_DLQ_URL=queues.dead_letter_url,
        SWAP_HIGH_QUEUE_URL=queues.high_priority_url or "",
        SWAP_TABLE="swap",
        SWAP_TOPIC_ARN=topic,
        SWAP_MAX_ITEMS=str(plan.changes),
        SWAP_WORKER_CONCURRENCY=str(plan.args.lambda_concurrency),
        THINGSPACE_APP_KEY=creds["app_key"],
        THINGSPACE_APP_SECRET=creds["app_secret"],
        THINGSPACE_USERNAME=creds["username"],
        THINGSPACE_PASSWORD=creds["password"],
        THINGSPACE_ACCOUNT=sim.account,
        THINGSPACE_BASE_URL=sim.url,
        THINGSPACE_RATE_LIMIT=f"{plan.rate:g}",
        CALLBACK_USERNAME=CALLBACK_USER,
        CALLBACK_PASSWORD=CALLBACK_PASSWORD,
        LOG_LEVEL="WARNING",
        BENCH_STOP_FILE=str(folder / "stop"),
    )
    return env, DynamoStore(dynamodb, "swap")


ROLES = {"intake": intake, "worker": worker, "callbacks": callbacks, "reconciler": reconciler}

if __name__ == "__main__":
    sys.exit(ROLES[sys.argv[1]](*sys.argv[2:]))
