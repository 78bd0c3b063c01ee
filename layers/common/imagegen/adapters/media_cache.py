"""S3 side of the media proxy: streamed copies of large upstream bodies, and presigned GETs of them."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

from imagegen.errors import ServiceUnavailable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

logger = logging.getLogger(__name__)

# S3's smallest multipart part: the least memory held per part while the body streams through.
MIN_PART_SIZE: Final = 5 * 1024 * 1024
_MISSING: Final = frozenset({"404", "NoSuchKey", "NotFound"})


class MediaCache:
    def __init__(self, bucket: str, s3_client: S3Client, *, part_size: int = MIN_PART_SIZE) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} (S3's minimum)")
        self._bucket = bucket
        self._s3 = s3_client
        self._part_size = part_size

    def exists(self, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return False
            raise _unavailable("head_object", exc) from None
        except BotoCoreError as exc:
            raise _unavailable("head_object", exc) from None
        return True

    def presigned_url(self, key: str, ttl_seconds: int) -> str:
        try:
            return self._s3.generate_presigned_url(
                "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=ttl_seconds
            )
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable("generate_presigned_url", exc) from None

    def store(self, key: str, chunks: Iterable[bytes], content_type: str) -> int:
        """One PutObject when the body fits in a part, else a multipart upload, one part in memory at a time.

        Errors from `chunks` (size limit, upstream failure) abort the upload and propagate unchanged; no partial
        object is ever visible, because a multipart upload only appears once completed.
        """
        buffer = bytearray()
        total = 0
        upload_id: str | None = None
        parts: list[CompletedPartTypeDef] = []
        try:
            for chunk in chunks:
                buffer += chunk
                total += len(chunk)
                if len(buffer) >= self._part_size:
                    if upload_id is None:
                        upload_id = self._create(key, content_type)
                    parts.append(self._upload_part(key, upload_id, len(parts) + 1, buffer))
                    buffer = bytearray()
            if upload_id is None:
                self._call("put_object", Bucket=self._bucket, Key=key, Body=bytes(buffer), ContentType=content_type)
                return total
            if buffer:
                parts.append(self._upload_part(key, upload_id, len(parts) + 1, buffer))
            self._call(
                "complete_multipart_upload",
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            if upload_id is not None:
                self._abort(key, upload_id)
            raise
        return total

    def _create(self, key: str, content_type: str) -> str:
        try:
            response = self._s3.create_multipart_upload(Bucket=self._bucket, Key=key, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable("create_multipart_upload", exc) from None
        return response["UploadId"]

    def _upload_part(self, key: str, upload_id: str, number: int, data: bytearray) -> CompletedPartTypeDef:
        try:
            response = self._s3.upload_part(
                Bucket=self._bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=bytes(data)
            )
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable("upload_part", exc) from None
        return {"ETag": response["ETag"], "PartNumber": number}

    def _call(self, operation: str, **kwargs: object) -> None:
        try:
            getattr(self._s3, operation)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(operation, exc) from None

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self._s3.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
        except (ClientError, BotoCoreError) as exc:
            # The original error is what the caller needs; the bucket's AbortIncompleteMultipartUpload rule
            # removes the parts left behind.
            logger.warning("abort_multipart_upload failed: %s", _error_code(exc))


def _error_code(exc: ClientError | BotoCoreError) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "unknown"))
    return type(exc).__name__


def _unavailable(operation: str, exc: ClientError | BotoCoreError) -> ServiceUnavailable:
    code = _error_code(exc)
    logger.warning("media cache %s failed: %s", operation, code)
    # The S3 error code stays in the log: callers learn only that the cache failed.
    return ServiceUnavailable("the media cache is unavailable")
