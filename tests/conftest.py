"""Fixtures, hooks and hypothesis profiles for the whole suite (helpers are in helpers.py).

Hypothesis profiles, chosen with the HYPOTHESIS_PROFILE environment variable (or pytest's
``--hypothesis-profile``); every state machine in test_fuzz.py runs under the one loaded:

* ``ci`` (the default): a few thousand steps per machine, well under a minute in all;
* ``long``: far more examples and longer runs, for a deliberate search (tens of minutes).

The machines' TestCase adds ``deadline=None`` and suppresses the health checks on its own.
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=500, stateful_step_count=50, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=20000, stateful_step_count=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _numpy_handler_is_restored():
    """No test may leave an arena installed as NumPy's allocator (NEP 49) for the tests
    after it: every ``numpy_allocator()`` block must have ended by the test's end."""
    yield
    name = np._core.multiarray.get_handler_name()
    assert name == "default_allocator", f"the test left NumPy's handler set to {name}"
