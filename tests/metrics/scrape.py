"""Scrape and parse `/metrics` in tests (prometheus_client's own text parser)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.processes import http

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample as {(sample name, labels): value}; a duplicate sample fails."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = sample.value
    return samples


def scrape(base_url: str, headers: Mapping[str, str] | None = None) -> Samples:
    status, response_headers, body = http("GET", f"{base_url}/metrics", headers=headers)
    assert status == 200, body[:300]
    assert response_headers["Content-Type"].startswith("text/plain")
    return parse(body.decode())


def value(samples: Samples, metric: str, /, **labels: str) -> float | None:
    """The value of the one sample `metric{labels}` (labels exactly), or None when absent."""
    return samples.get((metric, frozenset(labels.items())))


def series(samples: Samples, metric: str, /) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample named `metric`, by its labels."""
    return {labels: v for (sample, labels), v in samples.items() if sample == metric}
