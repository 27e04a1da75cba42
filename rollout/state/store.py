"""The shared state table (DynamoDB): lock, pause flag, journal and history of every environment.

One table serves every environment; items are keyed pk="env#NAME" and sk by kind:
"lock", "pause", "active" (the unfinished run), "journal#RUN#SEQ", "run#STARTED#RUN".
DynamoDB is used because its conditional writes are atomic and strongly consistent,
which is what a lock shared by operators and CI needs.
"""

from __future__ import annotations

import json
from typing import Optional

from botocore.exceptions import ClientError

from rollout.adapters.aws import Aws, from_config, translate
from rollout.adapters.retry import cancellation_reasons
from rollout.core.errors import PreflightError
from rollout.core.report import who


def condition_failed(exc: ClientError) -> bool:
    """True if a cancelled transaction lost a condition (not a conflict with another write, nor throttling).

    Without reasons (an endpoint that sends none) it counts as a condition failure, as before.
    """
    reasons = cancellation_reasons(exc)
    return not reasons or "ConditionalCheckFailed" in reasons


class Conflict(Exception):
    """A conditional write lost: someone else holds the item. `item` is what they hold."""

    def __init__(self, item: Optional[dict]):
        super().__init__("conditional write failed")
        self.item = item


def open_store(inv, check: bool = True, requester: Optional[str] = None) -> "Store":
    """The environment's items in its state table; AWS access only, no SSH files needed.

    With `check`, fail preflight unless the table exists. `requester` names the AWS role session
    (default: this process's operator, report.who()).
    """
    aws = from_config(inv.aws, requester if requester is not None else who())
    aws.check_access()
    store = Store(aws, inv.state.table, inv.name)
    if check:
        store.check()
    return store


def _plain(item: Optional[dict]) -> Optional[dict]:
    """A DynamoDB item (typed attribute values) as plain Python values."""
    if item is None:
        return None
    out = {}
    for k, v in item.items():
        (kind, value), = v.items()
        out[k] = float(value) if kind == "N" else json.loads(value) if kind == "S" and k == "data" else value
    return out


def _typed(values: dict) -> dict:
    out = {}
    for k, v in values.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = {"N": repr(float(v))}
        elif k == "data":
            out[k] = {"S": json.dumps(v, sort_keys=True)}
        else:
            out[k] = {"S": str(v)}
    return out


class Store:
    """Items of one environment in the shared table."""

    def __init__(self, aws: Aws, table: str, env: str):
        self.aws = aws
        self.table = table
        self.pk = f"env#{env}"

    @property
    def client(self):
        """The DynamoDB client, made on first use (building one takes ~0.1 s of CPU)."""
        return self.aws.client("dynamodb")

    def check(self) -> None:
        """Fail preflight unless the table exists."""
        with translate(f"reading state table {self.table}"):
            try:
                self.client.describe_table(TableName=self.table)
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                    raise PreflightError(
                        f"state table {self.table!r} does not exist; create it once with: fab setup --env=ENV"
                    ) from None
                raise

    def create_table(self) -> bool:
        """Create the table if missing (pk/sk strings, on demand); True if created."""
        with translate(f"creating state table {self.table}"):
            try:
                self.client.create_table(
                    TableName=self.table,
                    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
                    BillingMode="PAY_PER_REQUEST",
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ResourceInUseException":
                    return False
                raise
            self.client.get_waiter("table_exists").wait(TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        return True

    def get(self, sk: str) -> Optional[dict]:
        with translate(f"reading {sk} from {self.table}"):
            resp = self.client.get_item(TableName=self.table, Key=self._key(sk), ConsistentRead=True)
        return _plain(resp.get("Item"))

    def put(self, sk: str, values: dict, condition: Optional[str] = None, names=None, params: Optional[dict] = None) -> None:
        """Write an item; with `condition`, raise Conflict (carrying the current item) if it does not hold."""
        kwargs = {"TableName": self.table, "Item": {**self._key(sk), **_typed(values)}}
        if condition:
            kwargs["ConditionExpression"] = condition
            if names:
                kwargs["ExpressionAttributeNames"] = names
            if params:
                kwargs["ExpressionAttributeValues"] = {f":{k}": t for k, t in _typed(params).items()}
        self._conditional(lambda: self.client.put_item(**kwargs), sk)

    def update(self, sk: str, values: dict, condition: str, params: dict) -> None:
        """Set attributes of an item if `condition` holds (params are referred to as :name)."""
        kwargs = {
            "TableName": self.table, "Key": self._key(sk), "ConditionExpression": condition,
            "UpdateExpression": "SET " + ", ".join(f"#{k} = :v_{k}" for k in values),
            "ExpressionAttributeNames": {f"#{k}": k for k in values},
            "ExpressionAttributeValues": {**{f":v_{k}": t for k, t in _typed(values).items()},
                                          **{f":{k}": t for k, t in _typed(params).items()}},
        }
        self._conditional(lambda: self.client.update_item(**kwargs), sk)

    def delete(self, sk: str, condition: Optional[str] = None, params: Optional[dict] = None) -> Optional[dict]:
        """Delete an item (if `condition` holds); return what was there."""
        kwargs = {"TableName": self.table, "Key": self._key(sk), "ReturnValues": "ALL_OLD"}
        if condition:
            kwargs["ConditionExpression"] = condition
            kwargs["ExpressionAttributeValues"] = {f":{k}": t for k, t in _typed(params or {}).items()}
        resp = self._conditional(lambda: self.client.delete_item(**kwargs), sk)
        return _plain(resp.get("Attributes")) if resp else None

    def transact(self, fence: Optional[tuple[str, str]], *ops: tuple) -> None:
        """Apply writes atomically, all or none; Conflict if a condition fails.

        `fence` (attribute, value) makes the whole transaction conditional on the lock item
        holding that value: a run that lost its lock writes nothing. Each op is
        ("put", sk, values, condition) or ("delete", sk, condition), conditions on the op's
        own item written with :name placeholders whose values come from `params` in the op's
        last element (a dict).
        """
        items = []
        if fence is not None:
            attr, value = fence
            items.append({"ConditionCheck": {"TableName": self.table, "Key": self._key("lock"),
                                             "ConditionExpression": "#f = :f",
                                             "ExpressionAttributeNames": {"#f": attr},
                                             "ExpressionAttributeValues": {":f": {"S": value}}}})
        for kind, sk, *rest in ops:
            if kind == "put":
                values, condition, params = rest
                op = {"TableName": self.table, "Item": {**self._key(sk), **_typed(values)}}
                key = "Put"
            else:
                condition, params = rest
                op = {"TableName": self.table, "Key": self._key(sk)}
                key = "Delete"
            if condition:
                op["ConditionExpression"] = condition
                if params:
                    op["ExpressionAttributeValues"] = {f":{k}": t for k, t in _typed(params).items()}
            items.append({key: op})
        with translate(f"writing {', '.join(o[1] for o in ops)} to {self.table}"):
            try:
                self.client.transact_write_items(TransactItems=items)
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "TransactionCanceledException" and condition_failed(exc):
                    raise Conflict(self.get("lock")) from None
                raise

    def query(self, prefix: str, newest_first: bool = False, limit: Optional[int] = None) -> list[dict]:
        """Items whose sk starts with `prefix`, in sk order."""
        kwargs = {
            "TableName": self.table, "KeyConditionExpression": "pk = :pk AND begins_with(sk, :p)",
            "ExpressionAttributeValues": {":pk": {"S": self.pk}, ":p": {"S": prefix}},
            "ConsistentRead": True, "ScanIndexForward": not newest_first,
        }
        items: list[dict] = []
        with translate(f"reading {prefix}* from {self.table}"):
            while True:
                if limit:
                    kwargs["Limit"] = limit - len(items)
                resp = self.client.query(**kwargs)
                items += [_plain(i) for i in resp.get("Items", [])]
                if "LastEvaluatedKey" not in resp or (limit and len(items) >= limit):
                    break
                kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return items

    def _key(self, sk: str) -> dict:
        return {"pk": {"S": self.pk}, "sk": {"S": sk}}

    def _conditional(self, call, sk: str):
        with translate(f"writing {sk} to {self.table}"):
            try:
                return call()
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    raise Conflict(self.get(sk)) from None
                raise
