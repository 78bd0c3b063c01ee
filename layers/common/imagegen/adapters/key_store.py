"""Users' provider keys, encrypted with KMS, and key-health records, in the single table."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import SecretStr

from imagegen.adapters.dynamo import update_if
from imagegen.errors import ServiceUnavailable
from imagegen.keys.formats import key_provider, last4
from imagegen.keys.types import ANSWERED, KeyHealth, UserKey, key_fingerprint

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_kms.client import KMSClient

logger = logging.getLogger(__name__)

# User keys carry these on the `gsi1` index (a partition of their own), so the schedule finds every key to check.
KEYS_PARTITION = "KEYS"
DEPLOYMENT_HEALTH_PARTITION = "HEALTH#deployment"
_HEALTH_FIELDS = (
    "health_status",
    "health_detail",
    "health_checked_at",
    "health_attempted_at",
    "health_models",
    "health_gone",
)


def _user_key_item_key(user_id: str, provider: str) -> dict[str, Any]:
    return {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": f"KEY#{provider}"}}


def _health_values(health: KeyHealth) -> dict[str, Any]:
    return {
        ":status": {"S": health.status},
        ":detail": {"S": health.detail or ""},
        ":checked": {"S": health.checked_at.isoformat()},
        ":attempted": {"S": (health.attempted_at or health.checked_at).isoformat()},
        ":models": _strings(health.models),
        ":gone": _strings(health.gone),
    }


def _strings(values: tuple[str, ...] | None) -> dict[str, Any]:
    """A list of strings as a DynamoDB list; None (no listing) as NULL, which is not the empty list."""
    return {"NULL": True} if values is None else {"L": [{"S": value} for value in values]}


def _read_strings(item: dict[str, Any], name: str) -> tuple[str, ...] | None:
    values = item.get(name, {}).get("L")
    return None if values is None else tuple(dict.fromkeys(value["S"] for value in values))


_SET_HEALTH = (
    "health_status = :status, health_detail = :detail, health_checked_at = :checked, health_attempted_at = :attempted,"
    " health_models = :models, health_gone = :gone"
)
# A model the provider said does not exist: appended to the key's gone models. A key never checked gets the health
# of a key that answered (it works), so the mark is seen until the next listing.
_ADD_GONE = (
    "SET health_gone = list_append(if_not_exists(health_gone, :empty), :model),"
    " health_status = if_not_exists(health_status, :status), health_detail = if_not_exists(health_detail, :detail),"
    " health_checked_at = if_not_exists(health_checked_at, :checked)"
)


def _gone_values(model: str, at: datetime) -> dict[str, Any]:
    return {
        ":empty": {"L": []},
        ":model": {"L": [{"S": model}]},
        ":status": {"S": "ok"},
        ":detail": {"S": ANSWERED},
        ":checked": {"S": at.isoformat()},
    }


def _health(item: dict[str, Any]) -> KeyHealth | None:
    if "health_status" not in item:
        return None
    attempted = item.get("health_attempted_at", {}).get("S")
    return KeyHealth(
        status=item["health_status"]["S"],
        detail=item.get("health_detail", {}).get("S") or None,
        checked_at=datetime.fromisoformat(item["health_checked_at"]["S"]),
        attempted_at=datetime.fromisoformat(attempted) if attempted else None,
        models=_read_strings(item, "health_models"),
        gone=_read_strings(item, "health_gone") or (),
    )


def _user_key(item: dict[str, Any]) -> UserKey:
    return UserKey(
        user_id=item["user_id"]["S"],
        provider=key_provider(item["provider"]["S"]),
        last4=item["last4"]["S"],
        created_at=datetime.fromisoformat(item["created_at"]["S"]),
        updated_at=datetime.fromisoformat(item["updated_at"]["S"]),
        version=item["version"]["S"],
        health=_health(item),
    )


def _kms_unavailable(error: Exception) -> ServiceUnavailable:
    # Only the error code is logged: KMS messages are harmless, but the rule is simpler than the exception.
    code = error.response.get("Error", {}).get("Code") if isinstance(error, ClientError) else type(error).__name__
    logger.error("KMS call failed: %s", code)
    return ServiceUnavailable(
        "stored provider keys are unavailable right now (the key service did not answer)",
        hint="try again in a minute",
    )


class KeyStore:
    def __init__(self, table_name: str, dynamodb: DynamoDBClient, kms: KMSClient, kms_key_id: str | None) -> None:
        self._table = table_name
        self._ddb = dynamodb
        self._kms = kms
        self._kms_key_id = kms_key_id

    # Users' keys.

    def put(self, user_id: str, provider: str, api_key: SecretStr, *, now: datetime) -> UserKey:
        """Encrypt and store (replacing any earlier key); the item never holds the key in plain text."""
        if not self._kms_key_id:
            raise ServiceUnavailable(
                "storing your own provider keys is not enabled on this deployment",
                hint="the operator sets KEYS_KMS_KEY_ID to a KMS key",
            )
        try:
            encrypted = self._kms.encrypt(
                KeyId=self._kms_key_id,
                Plaintext=api_key.get_secret_value().encode(),
                EncryptionContext={"user_id": user_id, "provider": provider},
            )
        except (ClientError, BotoCoreError) as error:
            raise _kms_unavailable(error) from None
        answer = self._ddb.update_item(
            TableName=self._table,
            Key=_user_key_item_key(user_id, provider),
            UpdateExpression=(
                "SET user_id = :user, provider = :provider, ciphertext = :ciphertext, kms_key_arn = :kms_key,"
                " last4 = :last4, version = :version, updated_at = :now, created_at = if_not_exists(created_at, :now),"
                " gsi1pk = :keys, gsi1sk = :gsi1sk"
                # A new key has no health yet: the old key's verdict does not apply to it.
                f" REMOVE {', '.join(_HEALTH_FIELDS)}"
            ),
            ExpressionAttributeValues={
                ":user": {"S": user_id},
                ":provider": {"S": provider},
                ":ciphertext": {"B": encrypted["CiphertextBlob"]},
                ":kms_key": {"S": encrypted["KeyId"]},
                ":last4": {"S": last4(api_key.get_secret_value())},
                ":version": {"S": uuid.uuid4().hex},
                ":now": {"S": now.isoformat()},
                ":keys": {"S": KEYS_PARTITION},
                ":gsi1sk": {"S": f"{provider}#{user_id}"},
            },
            ReturnValues="ALL_NEW",
        )
        return _user_key(answer["Attributes"])

    def get(self, user_id: str, provider: str) -> UserKey | None:
        item = self._get_item(user_id, provider)
        return _user_key(item) if item else None

    def decrypt(self, user_id: str, provider: str) -> tuple[UserKey, SecretStr] | None:
        item = self._get_item(user_id, provider)
        if item is None:
            return None
        try:
            plain = self._kms.decrypt(
                CiphertextBlob=item["ciphertext"]["B"],
                KeyId=item["kms_key_arn"]["S"],
                EncryptionContext={"user_id": user_id, "provider": provider},
            )
        except (ClientError, BotoCoreError) as error:
            raise _kms_unavailable(error) from None
        return _user_key(item), SecretStr(plain["Plaintext"].decode())

    def list(self, user_id: str) -> list[UserKey]:
        answer = self._ddb.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": f"USER#{user_id}"}, ":prefix": {"S": "KEY#"}},
            # Only what the listing shows: the ciphertext stays in the table.
            ProjectionExpression="user_id, provider, last4, created_at, updated_at, version, "
            + ", ".join(_HEALTH_FIELDS),
        )
        return [_user_key(item) for item in answer.get("Items", [])]

    def delete(self, user_id: str, provider: str) -> bool:
        answer = self._ddb.delete_item(
            TableName=self._table, Key=_user_key_item_key(user_id, provider), ReturnValues="ALL_OLD"
        )
        return bool(answer.get("Attributes"))

    def record_health(self, user_id: str, provider: str, version: str, health: KeyHealth) -> bool:
        """Store a check's verdict on the key it was made for; False if that key was replaced or deleted since."""
        recorded = update_if(
            self._ddb,
            TableName=self._table,
            Key=_user_key_item_key(user_id, provider),
            UpdateExpression=f"SET {_SET_HEALTH}",
            ConditionExpression="version = :version",
            ExpressionAttributeValues={**_health_values(health), ":version": {"S": version}},
        )
        return recorded is not None

    def record_model_gone(self, user_id: str, provider: str, version: str, model: str, at: datetime) -> bool:
        recorded = update_if(
            self._ddb,
            TableName=self._table,
            Key=_user_key_item_key(user_id, provider),
            UpdateExpression=_ADD_GONE,
            ConditionExpression="version = :version",
            ExpressionAttributeValues={**_gone_values(model, at), ":version": {"S": version}},
        )
        return recorded is not None

    def scan_user_keys(self, page_size: int = 100) -> Iterator[UserKey]:
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :keys",
            "ExpressionAttributeValues": {":keys": {"S": KEYS_PARTITION}},
            "Limit": page_size,
        }
        while True:
            answer = self._ddb.query(**query)
            for item in answer.get("Items", []):
                yield _user_key(item)
            if "LastEvaluatedKey" not in answer:
                return
            query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    # The deployment's keys (the keys themselves live in Secrets Manager; only their health is here).

    def deployment_health(self, provider: str, key: SecretStr) -> KeyHealth | None:
        item = self._ddb.get_item(
            TableName=self._table,
            Key={"pk": {"S": DEPLOYMENT_HEALTH_PARTITION}, "sk": {"S": f"KEY#{provider}"}},
        ).get("Item")
        if item is None or item.get("key_fingerprint", {}).get("S") != key_fingerprint(key):
            return None
        return _health(item)

    def record_deployment_health(self, provider: str, key: SecretStr, health: KeyHealth) -> None:
        self._ddb.update_item(
            TableName=self._table,
            Key={"pk": {"S": DEPLOYMENT_HEALTH_PARTITION}, "sk": {"S": f"KEY#{provider}"}},
            UpdateExpression=f"SET {_SET_HEALTH}, key_fingerprint = :fingerprint",
            ExpressionAttributeValues={**_health_values(health), ":fingerprint": {"S": key_fingerprint(key)}},
        )

    def record_deployment_model_gone(self, provider: str, key: SecretStr, model: str, at: datetime) -> None:
        fingerprint = {":fingerprint": {"S": key_fingerprint(key)}}
        added = update_if(
            self._ddb,
            TableName=self._table,
            Key={"pk": {"S": DEPLOYMENT_HEALTH_PARTITION}, "sk": {"S": f"KEY#{provider}"}},
            UpdateExpression=_ADD_GONE,
            ConditionExpression="key_fingerprint = :fingerprint",
            ExpressionAttributeValues={**_gone_values(model, at), **fingerprint},
        )
        if added is None:
            # No record yet, or one of a key rotated out: this key's record starts with this mark.
            self.record_deployment_health(provider, key, KeyHealth.answered(at, (model,)))

    def _get_item(self, user_id: str, provider: str) -> dict[str, Any] | None:
        return self._ddb.get_item(
            TableName=self._table, Key=_user_key_item_key(user_id, provider), ConsistentRead=True
        ).get("Item")
