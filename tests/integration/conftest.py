"""Integration tests against the AT Protocol's reference servers (see bsky_network.py)."""
from pathlib import Path

import pytest

from tests.integration.bsky_network import BlueskyNetwork, NetworkError, postgres_server_url

HERE = Path(__file__).parent


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "integration: runs against the local Bluesky reference servers (Node 22, PostgreSQL)"
    )


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def bsky_network(pytestconfig):
    """One PLC + PDS + AppView for the whole session, with brand.test, brandhelp.test, alice.test and bob.test."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    try:
        # Let the progress lines through: the first install takes minutes.
        with capture.global_and_fixture_disabled():
            network = BlueskyNetwork.start(postgres_server_url())
    except NetworkError as err:
        # A missing network must fail the run, never skip it.
        raise pytest.fail.Exception(f"the local Bluesky network did not start: {err}", pytrace=False) from None
    yield network
    network.stop()
