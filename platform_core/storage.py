"""The S3 storage entry of STORAGES, built in one place for settings and tests."""

from __future__ import annotations

from typing import Any


def s3_storage(
    *,
    bucket: str,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    prefix: str = "",
    url_expire_seconds: int = 3600,
) -> dict[str, Any]:
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint_url,
            "region_name": region,
            # None: boto3's usual credential chain (environment, instance role, ...)
            "access_key": access_key,
            "secret_key": secret_key,
            "location": prefix,
            "file_overwrite": False,
            # Media is private: every URL handed out is signed and expires.
            "querystring_auth": True,
            "querystring_expire": url_expire_seconds,
            "default_acl": None,
            # botocore would presign with SigV2 in some regions; buckets made since 2020 refuse it.
            "signature_version": "s3v4",
        },
    }
