"""The SQS adapter on moto's server: messages go out, and a queue that does not take them is one port error
(QueueUnavailable) that callers with a durable record catch, while any other error still surfaces."""

from __future__ import annotations

import json

import pytest
from imagegen.adapters.queue import SqsQueue
from imagegen.messages import GenerateMessage, QueueUnavailable

from tests.conftest import Aws

pytestmark = pytest.mark.integration


def test_given_the_jobs_queue_when_messages_are_sent_then_each_arrives_as_its_json(aws: Aws) -> None:
    # Given the adapter on the real queue; When one message and a batch of twelve (two SQS batches) are sent
    queue = SqsQueue(aws.queue_url, aws.client("sqs"))
    queue.send(GenerateMessage(user_id="alice", job_id="img_1"))
    queue.send_many([GenerateMessage(user_id="alice", job_id=f"img_b{n}") for n in range(12)])

    # Then all thirteen arrive, each the message's JSON
    bodies = [json.loads(m["Body"]) for m in aws.receive() + aws.receive() + aws.receive()]
    assert sorted(body["job_id"] for body in bodies) == sorted(["img_1", *(f"img_b{n}" for n in range(12))])
    assert {body["kind"] for body in bodies} == {"generate"}


def test_given_a_queue_that_does_not_exist_when_sending_then_queue_unavailable_says_what_without_the_url(
    aws: Aws,
) -> None:
    # Given the adapter pointed at a queue SQS does not have
    missing = aws.queue_url.rsplit("/", 1)[0] + "/no-such-queue"
    queue = SqsQueue(missing, aws.client("sqs"))

    # When one message and a batch are sent, Then each raises the port's error naming what was not taken
    with pytest.raises(QueueUnavailable) as one:
        queue.send(GenerateMessage(user_id="alice", job_id="img_1"))
    with pytest.raises(QueueUnavailable) as many:
        queue.send_many([GenerateMessage(user_id="alice", job_id="img_2")])
    assert str(one.value).startswith("SQS did not take a generate message: ")
    assert str(many.value).startswith("SQS did not take a batch of 1: ")
    assert "no-such-queue" not in str(one.value) + str(many.value)
