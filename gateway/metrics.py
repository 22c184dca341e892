"""Series of the queue for GET /metrics."""

from __future__ import annotations

from core.metrics import Family
from gateway.selectors import queue_state


def queue_families() -> list[Family]:
    depth = Family("tollgate_queue_jobs", "Jobs queued or running.", "gauge")
    age = Family("tollgate_queue_oldest_seconds", "Age of the oldest queued job (0 when none).", "gauge")
    batches = Family("tollgate_open_batches", "Batches in progress.", "gauge")
    for row in queue_state():
        environment = row["environment"]
        depth.add({"environment": environment, "status": "queued"}, row["queued"])
        depth.add({"environment": environment, "status": "running"}, row["running"])
        age.add({"environment": environment}, row["oldest_queued_seconds"] or 0)
        batches.add({"environment": environment}, row["open_batches"])
    return [depth, age, batches]
