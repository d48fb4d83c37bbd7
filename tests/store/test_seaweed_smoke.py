"""The SeaweedFS fixture serves S3 with the test credentials."""

import boto3
from fixtures.seaweed import S3Server


def test_seaweed_serves_s3(seaweed: S3Server) -> None:
    client = boto3.client(
        "s3",
        endpoint_url=seaweed.endpoint,
        aws_access_key_id=seaweed.access_key,
        aws_secret_access_key=seaweed.secret_key,
        region_name=seaweed.region,
    )
    assert "Buckets" in client.list_buckets()
