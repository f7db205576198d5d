"""S3 adapter of ``AttachmentStore``: presigned POST uploads, presigned GET downloads.

The upload form's policy pins the key, the content type and the exact size
(``content-length-range``), so S3 itself refuses anything else; the chat logic
then checks the stored object (``HeadObject``) before a message may refer to
it. The local S3 (moto) does not enforce POST policies: the check at send is
what holds there (docs/decisions.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

DELETE_LIMIT = 1000  # keys per DeleteObjects


class S3AttachmentStore:
    """Attachments in one bucket (``LWM_BUCKET_CHAT_ATTACHMENTS``)."""

    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from lwm_core.aws import client

            self._client = client("s3")
        return self._client

    def upload_form(
        self, key: str, content_type: str, size: int, expires_s: int
    ) -> tuple[str, dict[str, str]]:
        form = self.client.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", size, size]],
            ExpiresIn=expires_s,
        )
        return str(form["url"]), {str(k): str(v) for k, v in form["fields"].items()}

    def describe(self, key: str) -> tuple[int, str] | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(head["ContentLength"]), str(head.get("ContentType", ""))

    def download_url(self, key: str, filename: str | None, expires_s: int) -> str:
        params: dict[str, str] = {"Bucket": self.bucket, "Key": key}
        if filename:
            params["ResponseContentDisposition"] = f"attachment; filename*=UTF-8''{quote(filename)}"
        return str(
            self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s)
        )

    def delete(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), DELETE_LIMIT):
            batch = [{"Key": k} for k in keys[start : start + DELETE_LIMIT]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
