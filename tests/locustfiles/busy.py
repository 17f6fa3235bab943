"""A locustfile whose task burns CPU: it saturates the worker running it."""

import time

import locust.runners
from locust import FastHttpUser, constant, task

# Locust's workers read their CPU every 10 s, and psutil's first reading is
# always 0: a saturated worker shows only after 20 s. This test file reads it
# every second so the test can be short; nothing else changes.
locust.runners.CPU_MONITOR_INTERVAL = 1.0


class BusyUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def spin(self) -> None:
        # Busy for 50 ms per request: a load generator that measures itself.
        end = time.perf_counter() + 0.05
        while time.perf_counter() < end:
            pass
        self.client.get("/items")
