"""CloudWatch metrics as Powertools EMF lines: one per key check (provider, source, status) and per sweep."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit, single_metric


class EmfMetrics:
    def key_checked(self, provider: str, source: str, status: str) -> None:
        # single_metric: each check carries its own dimensions, which one shared Metrics object cannot do.
        with single_metric(name="KeyCheck", unit=MetricUnit.Count, value=1) as metric:
            metric.add_dimension(name="provider", value=provider)
            metric.add_dimension(name="source", value=source)
            metric.add_dimension(name="status", value=status)

    def count(self, name: str, value: int) -> None:
        with single_metric(name=name, unit=MetricUnit.Count, value=value) as metric:
            metric.add_dimension(name="function", value="scheduled")
