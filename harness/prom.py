"""Reading one value out of a Prometheus text exposition (an API's or a worker's /metrics)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def sample_value(exposition: str, name: str, **labels: str) -> float:
    """The value of sample `name` with `labels` (a subset of its labels); 0.0 when it is absent,
    which is what a counter that never moved reads as."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0
