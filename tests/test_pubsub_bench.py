"""A smoke run of the cross-process Redis fan-out benchmark (bench/pubsub_redis.py), so it cannot rot: one
round of every configuration with 20 subscribers on two real uvicorn processes and a real redis-server. Nothing
is timed or compared here; the figures are in docs/performance.md."""

from __future__ import annotations

import pytest

pytest.importorskip("picows")

from bench import pubsub_redis

pytestmark = pytest.mark.timeout(120)


def test_every_configuration_runs_end_to_end() -> None:
    options = pubsub_redis.Options(rounds=1, subscribers=20, duration=0.3, warmup=0.1, small=(10, 20.0))
    data = pubsub_redis.run(options, log=print)
    errors = [record for record in data["records"] if "error" in record or "server_log" in record]
    assert errors == []
    assert set(data["summary"]) == set(pubsub_redis.CONFIGS)
    for row in data["summary"].values():
        assert row["deliveries_per_s"] > 0 and row["publishes_per_s"] > 0 and row["p99_ms"] > 0
    assert set(data["small_summary"]) == set(pubsub_redis.CONFIGS)  # the smaller fan-out, in the same rounds
    assert {record["subscribers"] for record in data["records"]} == {20, 10}
    assert "| scallion history on |" in pubsub_redis.markdown(data)
    assert "10 subscribers at 20/s (200 deliveries/s)" in pubsub_redis.markdown(data)
