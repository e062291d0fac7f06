"""The bench finds the operator's drift passes in its log, in the format the operator really logs."""

from __future__ import annotations

import logging

from bench import arrivals
from ecr_access import cli


def test_a_pass_line_as_the_operator_logs_it_is_found() -> None:
    """The operator's default format is kopf's `full`, which brackets the time: a pattern written for
    another format found no pass at all, and every bench run timed out waiting for one."""
    cli.configure_logging("full")
    [handler] = [item for item in logging.getLogger().handlers if type(item).__module__.startswith("kopf.")]
    record = logging.LogRecord("ecr_access.drift", logging.INFO, __file__, 1,
                               "Drift check: %d grants checked, %d statuses changed, %d retrying, %d failed",
                               (12, 0, 0, 0), None)

    found = arrivals.PASS_ENDED.search(handler.format(record))

    assert found is not None and found.group(2) == "12"
