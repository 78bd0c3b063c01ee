"""Routing providers' catalogs in the single table: one item per model, `pk=ROUTES#{provider}`, `sk=MODEL#{model}`."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from imagegen.catalogs import StoredCatalog
from imagegen.errors import ServiceUnavailable
from imagegen.providers.base import CatalogEntry

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

logger = logging.getLogger(__name__)
# A model nobody asks for any more leaves the table after this long (the schedule refreshes the others).
TTL_SECONDS = 30 * 86400


def _key(provider: str, model: str) -> dict[str, Any]:
    return {"pk": {"S": f"ROUTES#{provider}"}, "sk": {"S": f"MODEL#{model}"}}


def _unavailable(error: Exception) -> ServiceUnavailable:
    code = error.response.get("Error", {}).get("Code") if isinstance(error, ClientError) else type(error).__name__
    logger.warning("route catalog table call failed: %s", code)
    return ServiceUnavailable("the stored route catalogs are unavailable right now")


class DynamoRouteMapStore:
    """Implements catalogs.RouteMapStore; entries are kept as the JSON list they were read as."""

    def __init__(self, table_name: str, dynamodb: DynamoDBClient) -> None:
        self._table = table_name
        self._ddb = dynamodb

    def get(self, provider: str, model: str) -> StoredCatalog | None:
        try:
            item = self._ddb.get_item(TableName=self._table, Key=_key(provider, model)).get("Item")
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(error) from None
        if item is None:
            return None
        try:
            entries = tuple(CatalogEntry(**entry) for entry in json.loads(item["entries"]["S"]))
            return StoredCatalog(entries, float(item["fetched_at"]["N"]))
        except (KeyError, TypeError, ValueError):
            # An item this code cannot read is as good as none: the catalog is fetched again and overwrites it.
            logger.warning("unreadable stored route catalog", extra={"provider": provider})
            return None

    def put(self, provider: str, model: str, stored: StoredCatalog) -> None:
        entries = [asdict(entry) for entry in stored.entries]
        item = {
            **_key(provider, model),
            "provider": {"S": provider},
            "model": {"S": model},
            "entries": {"S": json.dumps(entries, separators=(",", ":"))},
            "fetched_at": {"N": repr(float(stored.fetched_at))},
            "expires_at": {"N": str(int(stored.fetched_at) + TTL_SECONDS)},
        }
        try:
            self._ddb.put_item(TableName=self._table, Item=item)
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(error) from None

    def models(self, provider: str) -> list[str]:
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"ROUTES#{provider}"}},
            "ProjectionExpression": "sk",
        }
        models: list[str] = []
        try:
            while True:
                answer = self._ddb.query(**query)
                models += [item["sk"]["S"].removeprefix("MODEL#") for item in answer.get("Items", [])]
                if "LastEvaluatedKey" not in answer:
                    return models
                query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(error) from None
