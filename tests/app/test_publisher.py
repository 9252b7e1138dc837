"""The API's background publisher (app/api/publisher.py) against a real Redis: jobs reach the queue
in order, and a failed or impossible publish is counted for the sweeper, never raised or lost."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from functools import partial

import pytest
from celery import Celery
from prometheus_client import REGISTRY
from redis import Redis

from app.api.publisher import Publisher
from app.worker.dispatch import QUEUE, TASK_NAME, Job, enqueue_many
from harness.net import wait_until
from harness.redis_server import RedisServer


def _failures() -> float:
    return REGISTRY.get_sample_value("ai_agents_enqueue_failures_total") or 0.0


def _private_url(redis_server: RedisServer) -> str:
    # Its own database: the suite's worker consumes the `enhancements` queue of database 0.
    return redis_server.url.rsplit("/", 1)[0] + "/15"


@pytest.fixture
def broker(redis_server: RedisServer) -> Iterator[Redis]:
    client = Redis.from_url(_private_url(redis_server))
    client.delete(QUEUE)
    yield client
    client.delete(QUEUE)
    client.close()


@pytest.fixture
def celery(redis_server: RedisServer) -> Celery:
    app = Celery("publisher-test", set_as_current=False)
    app.conf.update(broker_url=_private_url(redis_server), broker_connection_timeout=2)
    return app


def _queued_task_args(broker: Redis) -> list[list[str]]:
    messages = [json.loads(raw) for raw in reversed(broker.lrange(QUEUE, 0, -1))]  # type: ignore[arg-type]
    assert all(m["headers"]["task"] == TASK_NAME for m in messages)
    return [json.loads(base64.b64decode(m["body"]))[0] for m in messages]


def test_submitted_jobs_reach_the_queue_in_order(broker: Redis, celery: Celery) -> None:
    publisher = Publisher(partial(enqueue_many, celery))
    publisher.start()
    jobs = [(uuid.uuid4(), f"tenant-{n}") for n in range(5)]
    for job_id, tenant in jobs:
        publisher.submit(job_id, tenant)
    publisher.close(timeout=10)
    assert _queued_task_args(broker) == [[str(job_id), tenant] for job_id, tenant in jobs]


def test_a_failed_batch_is_counted_and_the_next_one_still_goes_out(broker: Redis, celery: Celery) -> None:
    poisoned = uuid.UUID(int=1)
    attempted: list[Sequence[Job]] = []

    def publish_many(jobs: Sequence[Job]) -> None:
        attempted.append(jobs)
        if any(job.id == poisoned for job in jobs):
            raise ConnectionError("broker down")
        enqueue_many(celery, jobs)

    publisher = Publisher(publish_many)
    publisher.start()
    before = _failures()
    publisher.submit(poisoned, "t")
    wait_until(lambda: _failures() == before + 1, 5, what="the failed publish counted")
    publisher.submit(uuid.UUID(int=2), "t")
    publisher.close(timeout=10)
    assert _queued_task_args(broker) == [[str(uuid.UUID(int=2)), "t"]]
    assert len(attempted) == 2


def test_jobs_waiting_during_a_publish_go_out_together() -> None:
    release = threading.Event()
    batches: list[list[uuid.UUID]] = []

    def slow_publish_many(jobs: Sequence[Job]) -> None:
        release.wait(10)
        batches.append([job.id for job in jobs])

    publisher = Publisher(slow_publish_many)
    publisher.start()
    ids = [uuid.UUID(int=n) for n in range(1, 6)]
    publisher.submit(ids[0], "t")
    wait_until(lambda: publisher.backlog() == 0, 5, what="the first job taken by the thread")
    for job_id in ids[1:]:
        publisher.submit(job_id, "t")
    release.set()
    publisher.close(timeout=10)
    assert batches == [ids[:1], ids[1:]]


def test_a_full_backlog_refuses_at_once_and_counts_it() -> None:
    release = threading.Event()
    published: list[uuid.UUID] = []

    def slow_publish_many(jobs: Sequence[Job]) -> None:
        release.wait(10)
        published.extend(job.id for job in jobs)

    publisher = Publisher(slow_publish_many, max_backlog=2)
    publisher.start()
    before = _failures()
    ids = [uuid.UUID(int=n) for n in range(1, 6)]
    publisher.submit(ids[0], "t")
    wait_until(lambda: publisher.backlog() == 0, 5, what="the first job taken by the thread")
    for job_id in ids[1:]:  # two fit in the backlog, two do not; submit never blocks
        publisher.submit(job_id, "t")
    assert _failures() == before + 2
    release.set()
    publisher.close(timeout=10)
    assert published == ids[:3]


def test_shutdown_reports_what_it_could_not_publish() -> None:
    stuck = threading.Event()

    def hanging_publish_many(_jobs: Sequence[Job]) -> None:
        stuck.wait(30)

    publisher = Publisher(hanging_publish_many)
    publisher.start()
    before = _failures()
    for n in range(4):
        publisher.submit(uuid.UUID(int=n + 1), "t")
    publisher.close(timeout=0.5)  # the first batch hangs: none of the four went out
    assert _failures() == before + 4
    stuck.set()
