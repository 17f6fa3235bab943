"""The locustfile the examples run: three endpoints of loadmanager's TargetServer."""

from locust import FastHttpUser, between, task


class ApiUser(FastHttpUser):
    wait_time = between(0.05, 0.15)

    @task(4)
    def items(self) -> None:
        self.client.get("/items")

    @task(1)
    def slow(self) -> None:
        self.client.get("/slow")

    @task(2)
    def flaky(self) -> None:
        self.client.get("/flaky")
