"""The embedded emulator keeps DynamoDB's atomicity: a cancelled transaction never undoes another thread's write."""

from __future__ import annotations

import threading
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Aws

pytestmark = pytest.mark.integration


def test_given_transactions_cancelled_while_another_client_writes_when_all_end_then_no_write_is_lost(aws: Aws):
    # Given an item that makes every transaction below fail its condition, after 40 puts each
    ddb = aws.client("dynamodb")
    ddb.put_item(TableName=aws.table, Item={"pk": {"S": "TAKEN"}, "sk": {"S": "TAKEN"}})

    def cancelled_transactions() -> None:
        client = aws.client("dynamodb")
        for _ in range(40):
            puts = [
                {"Put": {"TableName": aws.table, "Item": {"pk": {"S": uuid.uuid4().hex}, "sk": {"S": "T"}}}}
                for _ in range(40)
            ]
            taken = {
                "Put": {
                    "TableName": aws.table,
                    "Item": {"pk": {"S": "TAKEN"}, "sk": {"S": "TAKEN"}},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            with pytest.raises(ClientError):
                client.transact_write_items(TransactItems=[*puts, taken])

    def writes() -> None:
        client = aws.client("dynamodb")
        for n in range(150):
            client.put_item(TableName=aws.table, Item={"pk": {"S": f"W#{n}"}, "sk": {"S": "W"}})

    # When one client writes while two others' transactions are cancelled
    threads = [threading.Thread(target=writes), *(threading.Thread(target=cancelled_transactions) for _ in range(2))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then every write is there, and nothing of the cancelled transactions is
    items = ddb.scan(TableName=aws.table)["Items"]
    assert sorted(item["pk"]["S"] for item in items if item["sk"]["S"] == "W") == sorted(f"W#{n}" for n in range(150))
    assert [item for item in items if item["sk"]["S"] == "T"] == []
