"""A progress bar for a replay: the shadow topic's growth against the records expected.

A thread polls the shadow topic's end offsets (high watermarks).  They move
as the exactly-once sink writes, before its transactions commit, so the bar
follows the job rather than its checkpoints; transaction markers take an
offset each, so the count is approximate until the job ends.  On a terminal
the bar redraws in place; otherwise a line is printed at every quarter.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from streaming_agents.connectors.security import KafkaSecurity, librdkafka_config

__all__ = ["ProgressBar"]


class ProgressBar:
    """``with ProgressBar(...):`` draws while the replay job runs."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        expected: int,
        baseline: dict[int, int],
        *,
        label: str = "replay",
        stream: TextIO | None = None,
        interval_s: float = 0.5,
        width: int = 30,
        security: KafkaSecurity | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.security = security
        self.topic = topic
        self.expected = max(1, expected)
        self.baseline = dict(baseline)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.interval_s = interval_s
        self.width = width
        self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replay-progress", daemon=True)
        self._started = time.monotonic()
        self._last_quarter = -1
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __enter__(self) -> ProgressBar:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def finish(self, done: int) -> None:
        """Draw the final state (``done`` exact outputs) and end the line."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.written = done
        self._draw(final=True)

    def _run(self) -> None:
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        consumer = Consumer(
            {
                **librdkafka_config(self.security),
                "bootstrap.servers": self.bootstrap,
                "group.id": "sa-replay-progress",
            }
        )
        try:
            while not self._stop.wait(self.interval_s):
                try:
                    total = 0
                    for p, base in self.baseline.items():
                        high = consumer.get_watermark_offsets(TopicPartition(self.topic, p), 5)[1]
                        total += max(0, int(high) - base)
                except KafkaException:
                    continue  # a slow broker only delays the bar
                self.written = min(total, self.expected)
                self._draw()
        finally:
            consumer.close()

    def _draw(self, final: bool = False) -> None:
        share = min(1.0, self.written / self.expected)
        elapsed = time.monotonic() - self._started
        filled = int(share * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        text = f"{self.label} [{bar}] {self.written}/{self.expected} outputs {elapsed:5.1f}s"
        if self._tty:
            self.stream.write("\r" + text + ("\n" if final else ""))
            self.stream.flush()
            return
        quarter = int(share * 4)
        if final or quarter > self._last_quarter:
            self._last_quarter = quarter
            self.stream.write(text + "\n")
            self.stream.flush()
