"""Powertools' SQS batch processor, in two steps so a batch can be written together.

The record handler parses each record (a poison message fails alone, as usual); then `flush` writes every
parsed record at once and answers those it could not write, which are reported as failures too, so SQS
delivers exactly those again. Records left when time runs low are reported too (core.batch), keeping
`flush_seconds` for the flush. Nothing here is specific to statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from marketing.core.batch import DeadlineBatchProcessor
from marketing.core.observability import logger


class FlushFailed(Exception):
    """The batch write did not take this record: SQS delivers it again."""


class FlushingBatchProcessor(DeadlineBatchProcessor):
    def __init__(self, flush: Callable[[list[Any]], list[Any]], *, record_seconds: float, flush_seconds: float):
        super().__init__(record_seconds=record_seconds, finish_seconds=flush_seconds)
        self._flush = flush
        self._parsed: list[tuple[dict, Any]] = []

    def _prepare(self):
        super()._prepare()
        self._parsed = []

    def success_handler(self, record, result: Any):
        self._parsed.append((record, result))
        return super().success_handler(record, result)

    def _clean(self):
        if self._parsed:
            results = [result for _, result in self._parsed]
            try:
                left = {id(r) for r in self._flush(results)}
            except Exception:
                logger.exception("the batch write failed: every parsed record is delivered again")
                left = {id(r) for r in results}
            for record, result in self._parsed:
                if id(result) in left:
                    self.success_messages.remove(record)
                    self.fail_messages.append(SQSRecord(record))
                    self.exceptions.append((FlushFailed, FlushFailed(record.get("messageId")), None))
        super()._clean()
