"""The gevent worker's `pre_request` hook (worker/server.py `yield_to_hub`): other
greenlets get a turn before each request, without a turn of the loop where they had one."""

from __future__ import annotations

import gevent

from worker.server import yield_to_hub


def run_in_greenlet(steps) -> list[str]:
    """Run `steps(log)` in its own greenlet, a second greenlet spawned at the start;
    returns the order of events both logged."""
    events: list[str] = []

    def main() -> None:
        gevent.spawn(events.append, "other ran")
        steps(events)

    gevent.spawn(main).join()
    return events


def test_a_greenlet_that_has_not_waited_lets_the_others_run_first() -> None:
    def steps(events: list[str]) -> None:
        yield_to_hub(None, None)  # the first request of a new connection's greenlet
        events.append("first request")
        yield_to_hub(None, None)  # the next one was already buffered: no wait between
        events.append("second request")

    assert run_in_greenlet(steps) == ["first request", "other ran", "second request"]


def test_a_greenlet_that_waited_since_its_last_request_goes_on_at_once() -> None:
    def steps(events: list[str]) -> None:
        yield_to_hub(None, None)
        events.append("first request")
        gevent.sleep(0.001)  # it waited (for Ollama, for the client): the others ran
        gevent.spawn(events.append, "spawned after the wait")
        yield_to_hub(None, None)
        events.append("second request")

    assert run_in_greenlet(steps) == [
        "first request",
        "other ran",
        "second request",  # no extra turn of the loop before it
        "spawned after the wait",
    ]


def test_serving_buffered_requests_back_to_back_yields_every_time() -> None:
    def steps(events: list[str]) -> None:
        for number in range(3):
            yield_to_hub(None, None)
            events.append(f"request {number}")
            gevent.spawn(events.append, f"other after {number}")

    assert run_in_greenlet(steps) == [
        "request 0",
        "other ran",
        "other after 0",
        "request 1",
        "other after 1",
        "request 2",
        "other after 2",  # once the greenlet ends
    ]
