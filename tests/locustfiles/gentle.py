"""A gentle locustfile: one request a second per user, for many-user tests."""

from locust import FastHttpUser, constant, task


class GentleUser(FastHttpUser):
    wait_time = constant(1.0)

    @task
    def items(self) -> None:
        self.client.get("/items")
