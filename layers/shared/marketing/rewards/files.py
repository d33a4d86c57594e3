"""Export files (csv, xlsx) to S3 behind a pre-signed URL, and batch work to SQS. Clients are built on first
use, once per container: these are rare operator actions, which most cold starts never pay for."""

from __future__ import annotations

import csv
import io
import json
import os
from functools import cache

from marketing.core import aws

URL_SECONDS = 15 * 60
CONTENT_TYPES = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def render(rows: list[dict[str, str]], fmt: str) -> bytes:
    header = list(rows[0]) if rows else ["code"]
    if fmt == "xlsx":
        from openpyxl import Workbook  # imported only for xlsx: it is a large package

        book = Workbook(write_only=True)
        sheet = book.create_sheet("codes")
        sheet.append(header)
        for row in rows:
            sheet.append([row.get(h) for h in header])
        out = io.BytesIO()
        book.save(out)
        return out.getvalue()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


@cache
def _client(service: str):
    """One client per service and container, built on first use (never at import)."""
    return aws.client(service)


def store(key: str, body: bytes, fmt: str) -> str:
    """Store the file privately; answers a URL that reads it for 15 minutes (signed locally, no request)."""
    s3 = _client("s3")
    bucket = os.environ["EXPORT_BUCKET_NAME"]
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=CONTENT_TYPES[fmt])
    return s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=URL_SECONDS)


def discard(key: str) -> None:
    """Delete a stored file whose codes were not ours after all (the bucket's lifecycle rule is the backstop)."""
    _client("s3").delete_object(Bucket=os.environ["EXPORT_BUCKET_NAME"], Key=key)


def enqueue(messages: list[dict], queue_variable: str = "CODE_BATCH_QUEUE_URL") -> None:
    """Send work items to the queue the environment variable names: up to ten a request, and under SQS's
    256 KB a request (a batch grant's chunk carries its users)."""
    sqs = _client("sqs")
    url = os.environ[queue_variable]
    bodies = [json.dumps(m) for m in messages]
    while bodies:
        take, size = 0, 0
        while take < min(10, len(bodies)) and (take == 0 or size + len(bodies[take]) <= 200_000):
            size, take = size + len(bodies[take]), take + 1
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies[:take])]
        answer = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        if answer.get("Failed"):
            raise RuntimeError(f"SQS refused batch work: {answer['Failed']}")
        bodies = bodies[take:]
