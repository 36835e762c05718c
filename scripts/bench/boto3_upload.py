"""Baseline for scripts/bench-s3: the AWS SDK for Python uploads a file to the same S3 server
as coffer, with the same part size and parts in flight (boto3's managed transfer, the way a
Python service would upload), and prints the seconds it took.

Usage: boto3_upload.py ENDPOINT BUCKET KEY FILE PART_BYTES IN_FLIGHT
"""

import sys
import time

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config


def main() -> None:
    endpoint, bucket, key, path, part, in_flight = sys.argv[1:7]
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="eu-north-1",
        aws_access_key_id="coffer-test-access",
        aws_secret_access_key="coffer-test-secret-key",
        config=Config(s3={"addressing_style": "path"}),
    )
    transfer = TransferConfig(
        multipart_threshold=int(part),
        multipart_chunksize=int(part),
        max_concurrency=int(in_flight),
        use_threads=True,
    )
    start = time.monotonic()
    s3.upload_file(path, bucket, key, Config=transfer)
    print(f"{time.monotonic() - start:.3f}")


if __name__ == "__main__":
    main()
