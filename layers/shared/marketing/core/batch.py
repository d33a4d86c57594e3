"""Powertools' SQS batch processor that stops taking records before the invocation runs out of time.

A record is started only while the invocation has time left for it and for what follows the loop (a
batch-wide flush): `record_seconds + finish_seconds`. The records it does not start are reported as batch item
failures, so SQS delivers exactly those again, instead of the whole batch timing out and coming back with
the records that were done. `worst_case(batch_size)` is what the template's timeout must exceed.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType


class OutOfTime(Exception):
    """Not started: too little of the invocation was left. SQS delivers the record again."""


class DeadlineBatchProcessor(BatchProcessor):
    def __init__(self, *, record_seconds: float, finish_seconds: float = 0.0):
        # Failures are reported item by item even when every record failed: only those come back.
        super().__init__(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        self.record_seconds, self.finish_seconds = record_seconds, finish_seconds
        self._context: Any = None

    def worst_case(self, batch_size: int) -> float:
        return batch_size * self.record_seconds + self.finish_seconds

    def __call__(self, records: list[dict], handler, lambda_context: Any = None):
        self._context = lambda_context
        return super().__call__(records, handler, lambda_context)

    def _out_of_time(self) -> bool:
        if self._context is None:
            return False
        return self._context.get_remaining_time_in_millis() < (self.record_seconds + self.finish_seconds) * 1000

    def _process_record(self, record: dict):
        if self._out_of_time():
            reason = OutOfTime(f"{record.get('messageId')} left for the next delivery: the invocation is ending")
            data = self._to_batch_type(record, event_type=self.event_type, model=self.model)
            return self.failure_handler(record=data, exception=(OutOfTime, reason, None))
        return super()._process_record(record)
