import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Resampled training audio goes to a cache of the test session, never the user's."""
    monkeypatch.setenv("DYMN_CACHE", str(tmp_path_factory.getbasetemp() / "dymn-cache"))
