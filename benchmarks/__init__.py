"""Benchmarks of flask-rediscache against raw redis-py and its peers.

``python -m benchmarks`` starts a private redis-server on a free loopback
port, measures every contender against it in the same run (rounds of the
contenders interleaved, medians reported, because the machines this runs on
are small and shared) and prints a table, the goal ratios and the Redis round
trips each operation costs. ``python -m benchmarks.report`` turns the JSON
output into ``docs/performance.rst`` and its chart.

This package does not import the test suite: it must run without pytest.
"""
