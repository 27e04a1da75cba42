"""Carries the decisions out: preflight, the runner, deploy, recover, the queue worker, status."""
