"""S3 side of the media proxy: streamed copies of large upstream bodies, and presigned GETs of them."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final

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
        # Without s3:ListBucket, S3 answers a missing key with 403 rather than 404: the role needs it (on the prefix).
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

    def store(self, key: str, chunks: Iterable[bytes | bytearray], content_type: str) -> int:
        """One PutObject when the body fits in a part, else a multipart upload; returns the byte count.

        At most two parts are in memory: one uploading (in a worker thread, so reading upstream and writing to S3
        overlap) and one filling. Errors from `chunks` (size limit, upstream failure) abort the upload and
        propagate unchanged; nothing is ever visible under `key` unless the whole body arrived.
        """
        buffer = bytearray()
        total = 0
        upload: _MultipartUpload | None = None
        try:
            for chunk in chunks:
                buffer += chunk
                total += len(chunk)
                if len(buffer) >= self._part_size:
                    upload = upload or _MultipartUpload(self._s3, self._bucket, key, content_type)
                    upload.send(buffer)
                    buffer = bytearray()  # the sent one belongs to the upload now
            if upload is None:
                _call(self._s3.put_object, Bucket=self._bucket, Key=key, Body=bytes(buffer), ContentType=content_type)
                return total
            if buffer:
                upload.send(buffer)
            upload.complete()
        except BaseException:
            if upload is not None:
                upload.abort()
            raise
        return total


class _MultipartUpload:
    """One multipart upload with a single part in flight on its own thread."""

    def __init__(self, s3: S3Client, bucket: str, key: str, content_type: str) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._key = key
        response = _call(s3.create_multipart_upload, Bucket=self._bucket, Key=self._key, ContentType=content_type)
        self._upload_id: str = response["UploadId"]
        self._parts: list[CompletedPartTypeDef] = []
        self._pending: Future[CompletedPartTypeDef] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="media-part")

    def send(self, data: bytearray) -> None:
        self._drain()  # waits for the previous part: one in flight keeps memory at two parts
        number = len(self._parts) + 1
        self._pending = self._executor.submit(self._upload_part, number, data)

    def complete(self) -> None:
        try:
            self._drain()
            _call(
                self._s3.complete_multipart_upload,
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        finally:
            self._executor.shutdown(wait=True)

    def abort(self) -> None:
        # Let a part in flight finish first, or it could land after the abort and leave a part behind.
        self._executor.shutdown(wait=True)
        try:
            self._s3.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)
        except (ClientError, BotoCoreError) as exc:
            # The caller needs the original error; the bucket's AbortIncompleteMultipartUpload rule removes
            # whatever is left behind.
            logger.warning("abort_multipart_upload failed: %s", _error_code(exc))

    def _drain(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._parts.append(pending.result())  # re-raises the part's ServiceUnavailable

    def _upload_part(self, number: int, data: bytearray) -> CompletedPartTypeDef:
        response = _call(
            self._s3.upload_part,
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=data,
        )
        return {"ETag": response["ETag"], "PartNumber": number}


def _call(operation: Any, **kwargs: Any) -> Any:
    try:
        return operation(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise _unavailable(getattr(operation, "__name__", "s3"), exc) from None


def _error_code(exc: ClientError | BotoCoreError) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "unknown"))
    return type(exc).__name__


def _unavailable(operation: str, exc: ClientError | BotoCoreError) -> ServiceUnavailable:
    # The S3 error code stays in the log: callers learn only that the cache failed.
    logger.warning("media cache %s failed: %s", operation, _error_code(exc))
    return ServiceUnavailable("the media cache is unavailable")
