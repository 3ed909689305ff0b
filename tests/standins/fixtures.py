"""pytest fixtures for the stand-ins. In a test module:

    pytest_plugins = ["tests.standins.fixtures"]

`fcm_standin` / `apns_standin` are the session's servers, reset for each test (requests
and injected failures forgotten, started again if a test stopped them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.standins.apns import ApnsStandin
from tests.standins.fcm import FcmStandin
from tests.standins.tls import LocalCA


@pytest.fixture(scope="session")
def standin_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA(tmp_path_factory.mktemp("standin-ca"))


@pytest.fixture(scope="session")
def fcm_server(standin_ca: LocalCA) -> Iterator[FcmStandin]:
    with FcmStandin(standin_ca) as server:
        yield server


@pytest.fixture(scope="session")
def apns_server(standin_ca: LocalCA) -> Iterator[ApnsStandin]:
    with ApnsStandin(standin_ca) as server:
        yield server


@pytest.fixture
def fcm_standin(fcm_server: FcmStandin) -> FcmStandin:
    fcm_server.reset()
    return fcm_server


@pytest.fixture
def apns_standin(apns_server: ApnsStandin) -> ApnsStandin:
    apns_server.reset()
    return apns_server


__all__ = ["apns_server", "apns_standin", "fcm_server", "fcm_standin", "standin_ca"]
