"""Moto's server on 127.0.0.1, made to behave like DynamoDB where the tests and soaks need it.

Moto runs a DynamoDB transaction without isolation and undoes a cancelled one by restoring a
deep copy of the whole table, taken before every transaction: that loses writes made meanwhile
by other requests (DynamoDB itself serialises them), and its cost grows with the table, so a
run of thousands of changes slows to seconds per transaction. The adjustments, all confined to
the server's process:

- DynamoDB requests run one at a time (SQS and SNS requests, long polls included, still run in
  parallel);
- ``TransactWriteItems`` checks every condition first, against the items as they were before
  the transaction (as DynamoDB does), then applies the writes, and copies only the items it
  writes so that it can undo them if a write fails. What the client sees (the error, the
  ``CancellationReasons``, ``ALL_OLD`` items) is the same as moto's own;
- moto answers every query, even one naming a partition key, by sorting the whole table and
  filtering it: here a query looks only at the partition it names (for an index, at the items
  holding the index's key values), and a table sorts its items by the keys' plain values,
  computed once per item, instead of comparing moto's typed values pair by pair. Same results,
  same order, without a cost that made each query of a table of 10,000 items take most of a
  second;
- moto's SQS counts every message of a queue (visible, delayed, in flight) each time it looks
  at any queue attribute, several times per call (each send reads one), and once per message
  on a receive (for the retention period): here an attribute is computed when it is read, a
  call computes the attributes it returns once, a receive reads the retention
  period directly, and the clock is read with ``time.time()`` instead of building two
  datetimes per message. Same answers, without a receive costing the square of the queue;
- moto writes DynamoDB's responses through its generic, shape-driven serializer, half of the
  server's time on a soak: here a result holding no binary value or datetime is written with
  ``json.dumps`` (DynamoDB's wire format is that JSON), leaving out absent members as the
  serializer does; the rest still goes through moto's serializer;
- werkzeug's development server closes the connection after each response and starts a
  thread per connection, and moto looks up the service's application for every request by
  listing its package folder: here waitress serves moto's application with keep-alive
  connections and a pool of threads, and each service's application is looked up once.

``moto_server_process()`` runs the same server in a process of its own, for the soak: its
memory is then the soak's own, and moto works on the other core.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from unittest import mock

_OPERATIONS = frozenset({"ConditionCheck", "Put", "Delete", "Update"})


def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """``DynamoDBBackend.transact_write_items``, checking first and copying only what it writes."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    seen: set[tuple[str, str]] = set()
    plan: list[tuple[str, dict[str, Any], dict[str, Any], Any]] = []
    reasons: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
    for entry in transact_items:
        if len(entry) > 1:
            raise TransactWriteSingleOpException
        kind, op = next(iter(entry.items()))
        if kind not in _OPERATIONS:
            reasons.append(("ValueError", "Unsupported transaction operation", None))
            continue
        table = self.get_table(op["TableName"])
        if kind == "Put":
            names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
            key = {name: op["Item"][name] for name in names}
        else:
            key = op["Key"]
        marker = (str(op["TableName"]), str(dict(sorted(key.items()))))
        if marker in seen:
            raise MultipleTransactionsException()
        seen.add(marker)
        current = self.get_item(op["TableName"], key)
        condition = op.get("ConditionExpression")
        if condition is not None and not get_filter_expression(
            condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        ).expr(current):
            old = None
            if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                old = current.to_json()["Attributes"]
            reasons.append(("ConditionalCheckFailed", ConditionalCheckFailed().message, old))
            continue
        reasons.append((None, None, None))
        plan.append((kind, op, key, copy.deepcopy(current)))
    if any(code is not None for code, _, _ in reasons):
        raise TransactionCanceledException(reasons)
    done: list[tuple[str, dict[str, Any], Any]] = []
    try:
        for kind, op, key, before in plan:
            name = op["TableName"]
            if kind == "Put":
                self.put_item(name, op["Item"])
            elif kind == "Delete":
                self.delete_item(name, key)
            elif kind == "Update":
                self.update_item(
                    name,
                    key,
                    update_expression=op["UpdateExpression"],
                    expression_attribute_names=op.get("ExpressionAttributeNames"),
                    expression_attribute_values=op.get("ExpressionAttributeValues"),
                )
            done.append((name, key, before))
    except Exception as error:
        for name, key, before in reversed(done):
            if before is None:
                self.delete_item(name, key)
            else:
                self.put_item(name, before.to_json()["Attributes"])
        failed = [(None, None, None)] * len(transact_items)
        failed[len(done)] = (type(error).__name__, str(error), None)
        raise TransactionCanceledException(failed) from error


def all_items(self: Any) -> list[Any]:
    """``Table.all_items``: the same order as moto's, by plain key values."""
    if self.range_key_attr:
        items = [item for group in self.items.values() for item in group.values()]
    else:
        items = list(self.items.values())
    return sorted(
        items,
        key=lambda item: (
            (item.hash_key.cast_value, item.range_key.cast_value)
            if item.range_key
            else (item.hash_key.cast_value,)
        ),
    )


def _same(value: Any, expected: Any) -> bool:
    return value is not None and value.type == expected.type and value.value == expected.value


class IndexKeys:
    """Where each value of an index's partition-key attribute is in a table, kept current by
    every write (``watch_writes``), so that a query of an index looks only at its items."""

    def __init__(self, table: Any) -> None:
        self.names = frozenset(
            key["AttributeName"]
            for index in table.all_indexes()
            for key in index.schema
            if key["KeyType"] == "HASH"
        )
        self._where: defaultdict[tuple[str, str, Any], dict[Any, None]] = defaultdict(dict)
        self._held: dict[Any, list[tuple[str, str, Any]]] = {}
        for item in all_items(table):
            self.put(item)

    @staticmethod
    def of(table: Any) -> IndexKeys:
        """The table's index of index keys, built on first use."""
        if "_index_keys" not in table.__dict__:
            table._index_keys = IndexKeys(table)
        return table.__dict__["_index_keys"]  # type: ignore[no-any-return]

    def drop(self, key: Any) -> None:
        for entry in self._held.pop(key, []):
            self._where[entry].pop(key, None)

    def put(self, item: Any) -> None:
        key = (item.hash_key, item.range_key)
        self.drop(key)
        entries = [
            (name, value.type, value.value)
            for name in self.names
            if (value := item.attrs.get(name)) is not None and isinstance(value.value, str | bytes)
        ]
        for entry in entries:
            self._where[entry][key] = None
        if entries:
            self._held[key] = entries

    def keys(self, name: str, value: Any) -> list[Any]:
        return list(self._where.get((name, value.type, value.value), ()))


def _written(backend: Any, table_name: str, key: Any) -> None:
    """Bring the table's index keys up to date with the item at ``key`` (hash, range)."""
    table = backend.get_table(table_name)
    if "_index_keys" in table.__dict__:
        item = table.get_item(*key)
        if item is None:
            table._index_keys.drop(key)
        else:
            table._index_keys.put(item)


def watch_writes(
    put: Callable[..., Any], delete: Callable[..., Any], update: Callable[..., Any]
) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    """``DynamoDBBackend``'s put, delete and update (which transactions and batch writes use
    too), each refreshing the index keys of the item it wrote."""

    def put_item(self: Any, table_name: str, attrs: Any, *args: Any, **kwargs: Any) -> Any:
        item = put(self, table_name, attrs, *args, **kwargs)
        _written(self, table_name, (item.hash_key, item.range_key))
        return item

    def delete_item(self: Any, table_name: str, key: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return delete(self, table_name, key, *args, **kwargs)
        finally:
            _written(self, table_name, self.get_keys_value(self.get_table(table_name), key))

    def update_item(self: Any, table_name: str, key: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return update(self, table_name, key, *args, **kwargs)
        finally:
            _written(self, table_name, self.get_keys_value(self.get_table(table_name), key))

    return put_item, delete_item, update_item


def narrowed_query(original: Callable[..., Any]) -> Callable[..., Any]:
    """``Table.query`` run over only the items that can match its key conditions."""

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        conditions = kwargs.get("hash_key_conditions")
        candidates: defaultdict[Any, Any] = defaultdict(dict)
        if index_name and conditions and conditions[0][0] in IndexKeys.of(self).names:
            for key, range_key in IndexKeys.of(self).keys(*conditions[0]):
                item = self.items[key][range_key] if self.range_key_attr else self.items[key]
                if all(_same(item.attrs.get(n), v) for n, v in conditions):
                    if self.range_key_attr:
                        candidates[key][range_key] = item
                    else:
                        candidates[key] = item
        elif not index_name:
            if hash_key in self.items:
                candidates[hash_key] = self.items[hash_key]
        else:
            return original(self, hash_key, *args, **kwargs)
        everything, self.items = self.items, candidates
        try:
            return original(self, hash_key, *args, **kwargs)
        finally:
            self.items = everything

    return query


def _now(original: Callable[..., float], scale: float) -> Callable[..., float]:
    """``unix_time``/``unix_time_millis`` reading ``time.time()`` when given no datetime."""

    def now(dt: Any = None) -> float:
        return original(dt) if dt is not None else time.time() * scale

    return now


class QueueAttributes(Mapping[str, Any]):
    """``Queue.attributes`` computing each attribute when it is read: moto computes all of
    them, counting every message of the queue, to read one (as each send does)."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        names = list(queue.BASE_ATTRIBUTES)
        names += queue.FIFO_ATTRIBUTES if queue.fifo_queue else []
        names += queue.KMS_ATTRIBUTES if queue.kms_master_key_id else []
        names += ["Policy"] if queue.policy else []
        names += ["RedrivePolicy"] if queue.redrive_policy else []
        self._names = dict.fromkeys(names)

    def __getitem__(self, name: str) -> Any:
        from moto.core.utils import camelcase_to_underscores

        if name not in self._names:
            raise KeyError(name)
        if name == "Policy":
            return self._queue.policy
        if name == "RedrivePolicy":
            return json.dumps(self._queue.redrive_policy)
        value = getattr(self._queue, camelcase_to_underscores(name))
        return str(value).lower() if isinstance(value, bool) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def get_queue_attributes(self: Any, queue_name: str, attribute_names: list[str]) -> Any:
    """``SQSBackend.get_queue_attributes``, computing the queue's attributes once."""
    from moto.sqs.exceptions import InvalidAttributeName

    queue = self.get_queue(queue_name)
    if not attribute_names:
        return {}
    valid = ["All", *queue.BASE_ATTRIBUTES, *queue.FIFO_ATTRIBUTES, *queue.KMS_ATTRIBUTES]
    invalid = next((name for name in attribute_names if name not in valid), None)
    if invalid is not None:
        raise InvalidAttributeName(invalid)
    every = queue.attributes
    if "All" in attribute_names:
        return dict(every)
    return {n: every[n] for n in attribute_names if every.get(n) is not None}


def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
    """The same check as moto's, reading the one attribute it needs."""
    retention = self.get_queue(queue_name).message_retention_period
    return bool(int(retention) + message.sent_timestamp / 1000 > time.time())


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def dynamo_json(original: Callable[..., Any]) -> Callable[..., Any]:
    """``DynamoResult.execute_result`` writing the result as JSON directly, as DynamoDB's
    wire format is that JSON; binary values and datetimes still go to moto's serializer."""

    def execute_result(self: Any, context: Any) -> Any:
        try:
            body = json.dumps(_without_none(self.result))
        except TypeError:  # bytes or datetimes, which moto's serializer encodes
            return original(self, context)
        return 200, {"Content-Type": "application/x-amz-json-1.0"}, body

    return execute_result


_SCOPE = re.compile(r"Credential=[^/]*/[^/]*/[^/]*/([^/]+)/aws4_request")


def front(dispatcher: Any) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """Moto's dispatcher, remembering each service's application (moto looks it up again for
    every request, listing its package folder to do so) and running DynamoDB requests one at
    a time (SQS and SNS requests, long polls included, still run in parallel)."""
    apps: dict[str, Any] = {}
    dynamodb = threading.Lock()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        scope = _SCOPE.search(str(environ.get("HTTP_AUTHORIZATION", "")))
        service = scope.group(1) if scope else None
        backend = apps.get(service) if service else None
        if backend is None:
            backend = dispatcher.get_application(environ)
            if service:
                apps[service] = backend
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
            return backend(environ, start_response)  # type: ignore[no-any-return]
        with dynamodb:
            return list(backend(environ, start_response))

    return app


def client(endpoint: str, service: str) -> Any:
    """A boto3 client of ``service`` on the moto server at ``endpoint`` (fake credentials)."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@contextmanager
def moto_server() -> Iterator[str]:
    """Moto's server on 127.0.0.1 (an ephemeral port), adjusted as above; yields its URL."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoResult
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from moto.sqs import models as sqs
    from waitress import wasyncore
    from waitress.server import create_server

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" notes
    writes = ("put_item", "delete_item", "update_item")
    originals = [getattr(DynamoDBBackend, name) for name in writes]
    watched = dict(zip(writes, watch_writes(*originals), strict=True))

    with (
        mock.patch.object(DynamoDBBackend, "transact_write_items", transact_write_items),
        mock.patch.object(Table, "all_items", all_items),
        mock.patch.object(DynamoResult, "execute_result", dynamo_json(DynamoResult.execute_result)),
        mock.patch.object(Table, "query", narrowed_query(Table.query)),
        mock.patch.multiple(DynamoDBBackend, **watched),
        mock.patch.object(sqs.Queue, "attributes", property(QueueAttributes)),
        mock.patch.object(sqs.SQSBackend, "get_queue_attributes", get_queue_attributes),
        mock.patch.object(
            sqs.SQSBackend,
            "is_message_valid_based_on_retention_period",
            is_message_valid_based_on_retention_period,
        ),
        mock.patch.object(sqs, "unix_time", _now(sqs.unix_time, 1.0)),
        mock.patch.object(sqs, "unix_time_millis", _now(sqs.unix_time_millis, 1000.0)),
    ):
        server = create_server(
            front(DomainDispatcherApplication(create_backend_app)),
            host="127.0.0.1",
            port=0,
            threads=32,
            # (waitress's default of 100 open connections stalls every client once eight
            # workers, their threads and a callback listener keep their pools open)
            connection_limit=1000,
            ident="moto",
        )
        thread = threading.Thread(target=server.run, name="moto-server", daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.effective_port}"
        finally:
            server.task_dispatcher.shutdown(timeout=5)
            wasyncore.close_all(server._map)
            thread.join(timeout=5)


@contextmanager
def moto_server_process() -> Iterator[str]:
    """The same server in a process of its own, so that a soak's memory and CPU figures are
    its own and moto's work runs on another core; yields its URL. The server stops when its
    standard input closes."""
    process = subprocess.Popen(
        [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        url = process.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"moto's server did not start (it said {url!r})")
        yield url
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


if __name__ == "__main__":
    with moto_server() as endpoint:
        print(endpoint, flush=True)
        sys.stdin.read()
