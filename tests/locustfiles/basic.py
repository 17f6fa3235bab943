"""A locustfile for the tests: three endpoints of loadmanager's TargetServer."""

from locust import FastHttpUser, constant, tag, task


class ApiUser(FastHttpUser):
    wait_time = constant(0.05)

    @task(4)
    @tag("read")
    def items(self) -> None:
        self.client.get("/items")

    @task(2)
    @tag("read")
    def slow(self) -> None:
        self.client.get("/slow")

    @task(4)
    def flaky(self) -> None:
        self.client.get("/flaky")


class OrderUser(FastHttpUser):
    wait_time = constant(0.2)

    @task
    def order(self) -> None:
        self.client.post("/orders", json={"sku": "x"})
