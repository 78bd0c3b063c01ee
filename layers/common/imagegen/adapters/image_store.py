"""Generated images in S3 under deterministic keys, so a redelivered job overwrites rather than duplicates."""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


class ImageStore:
    def __init__(self, bucket: str, client: S3Client) -> None:
        self._bucket = bucket
        self._client = client

    @staticmethod
    def key_for(user_id: str, job_id: str, content_type: str) -> str:
        return f"images/{user_id}/{job_id}.{_EXTENSIONS.get(content_type, 'bin')}"

    def put(self, user_id: str, job_id: str, data: bytes, content_type: str) -> str:
        key = self.key_for(user_id, job_id, content_type)
        self._client.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            ChecksumSHA256=_b64_sha256(data),
            Metadata={"job-id": job_id},
        )
        return key

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self._bucket, Key=key)

    def read(self, key: str) -> tuple[bytes, str]:
        answer = self._client.get_object(Bucket=self._bucket, Key=key)
        return answer["Body"].read(), answer.get("ContentType") or "application/octet-stream"

    def presigned_url(self, key: str, expires_in: int) -> str:
        return self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires_in
        )


def _b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()
