"""What the journeys share: the world's binaries (found or built once per run) and a journey of
its own per test, whose transcript is printed when the test fails."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.e2e.journey import Journey, open_journey
from world.binaries import Binaries, BuildError, find_binaries


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, object, None]:
    """Keep each phase's report on the test, so a fixture can tell that its test failed."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def world_binaries() -> Binaries:
    try:
        return find_binaries()
    except BuildError as error:
        pytest.fail(f"the world's binaries could not be found or built: {error}", pytrace=False)


@pytest.fixture
def journey(
    tmp_path: Path, world_binaries: Binaries, request: pytest.FixtureRequest
) -> Iterator[Journey]:
    opened = open_journey(tmp_path, world_binaries)
    journey = next(opened)
    yield journey
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        print(journey.transcript())  # pytest shows it with the failure
    opened.close()
