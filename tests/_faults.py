"""Steady load with per-request accounting, for fault-injection and shutdown tests.

Every request gets an id, its text, when it was sent and how it ended: an answer (checked
against the healthy server's answer for the same text) or an explicit error. A request that
has not ended by its client deadline plus a margin counts as hung.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tritonize.client import TritonizeClient

MODEL = "distilbert_emotion"
SCORE_TOLERANCE = 1e-4


@dataclass
class Outcome:
    id: int
    text: str
    protocol: str
    sent: float
    done: float | None = None
    answer: tuple[str, float] | None = None
    error: str | None = None


def healthy_answers(http_url: str, texts: list[str]) -> dict[str, tuple[str, float]]:
    """The label and score the healthy server gives each text."""
    with TritonizeClient(http_url, "http", timeout=30) as client:
        return {t: (r["label"], r["score"]) for t, r in zip(texts, client.classify(texts, model=MODEL))}


@dataclass
class SteadyLoad:
    """``threads`` closed-loop senders (alternating gRPC/HTTP), one text per request."""

    urls: dict[str, str]
    expected: dict[str, tuple[str, float]]
    threads: int = 4
    timeout_s: float = 10.0
    pause_after_error_s: float = 0.05
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._ended = threading.Condition()  # notified whenever a request ends
        self._ids = iter(range(1 << 30))
        self._texts = list(self.expected)
        self._workers: list[threading.Thread] = []

    def _next(self, protocol: str) -> Outcome:
        with self._lock:
            i = next(self._ids)
            outcome = Outcome(id=i, text=self._texts[i % len(self._texts)], protocol=protocol, sent=time.monotonic())
            self.outcomes.append(outcome)
        return outcome

    def _send(self, protocol: str) -> None:
        client = None
        while not self._stop.is_set():
            if client is None:
                client = TritonizeClient(self.urls[protocol], protocol, timeout=self.timeout_s)
            outcome = self._next(protocol)
            try:
                result = client.classify([outcome.text], model=MODEL)[0]
                outcome.answer = (result["label"], result["score"])
            except Exception as exc:  # noqa: BLE001 - every failure is an outcome to count
                outcome.error = f"{type(exc).__name__}: {exc}"
                client.close()
                client = None  # a fresh connection after a reset or refusal
                time.sleep(self.pause_after_error_s)
            outcome.done = time.monotonic()
            with self._ended:
                self._ended.notify_all()
        if client is not None:
            client.close()

    def start(self) -> SteadyLoad:
        for i in range(self.threads):
            protocol = ("grpc", "http")[i % 2]
            worker = threading.Thread(target=self._send, args=(protocol,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def wait_answered(self, count: int, timeout_s: float) -> None:
        """Block until ``count`` requests were answered correctly: the load is flowing.

        Raises AssertionError when that does not happen within ``timeout_s``.
        """
        with self._ended:
            flowing = self._ended.wait_for(lambda: sum(map(self.correct, list(self.outcomes))) >= count, timeout=timeout_s)
        assert flowing, f"fewer than {count} correct answers within {timeout_s} s: {self.counts()}"

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=self.timeout_s + 5)

    # -- accounting --------------------------------------------------------------------------
    def correct(self, o: Outcome) -> bool:
        label, score = self.expected[o.text]
        return o.answer is not None and o.answer[0] == label and abs(o.answer[1] - score) <= SCORE_TOLERANCE

    def hung(self, o: Outcome, now: float) -> bool:
        end = o.done if o.done is not None else now
        return end - o.sent > self.timeout_s + 5

    def counts(self) -> dict[str, int]:
        now = time.monotonic()
        outcomes = list(self.outcomes)
        return {
            "sent": len(outcomes),
            "answered": sum(1 for o in outcomes if self.correct(o)),
            "wrong": sum(1 for o in outcomes if o.answer is not None and not self.correct(o)),
            "explicit_error": sum(1 for o in outcomes if o.error is not None),
            "hung": sum(1 for o in outcomes if self.hung(o, now)) + sum(w.is_alive() for w in self._workers),
        }

    def errors_after(self, t: float) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is not None and o.sent >= t]

    def recovered_at(self, t_fault: float) -> float | None:
        """When a request sent after the fault's last error was first answered correctly (monotonic)."""
        errors = self.errors_after(t_fault)
        after = max((o.sent for o in errors), default=t_fault)
        done = [o.done for o in list(self.outcomes) if o.sent > after and o.done is not None and self.correct(o)]
        return min(done) if done else None

    def wait_recovered(self, t_fault: float, timeout_s: float, settle_s: float = 1.5) -> float | None:
        """Wait until correct answers come back and stay for ``settle_s``; returns recovery seconds."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            at = self.recovered_at(t_fault)
            if at is not None and time.monotonic() - at >= settle_s:
                return at - t_fault
            time.sleep(0.1)
        return None

    def summary(self, fault: str, recovery_s: float | None, extra: dict[str, Any] | None = None) -> str:
        counts = self.counts()
        parts = [f"{k}={v}" for k, v in counts.items()]
        parts.append("recovery_s=" + ("none" if recovery_s is None else f"{recovery_s:.2f}"))
        parts += [f"{k}={v}" for k, v in (extra or {}).items()]
        return f"FAULT {fault}: " + " ".join(parts)
