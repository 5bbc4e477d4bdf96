"""One reader for boolean environment variables."""

import pytest

from sktransfer._env import env_flag


@pytest.mark.parametrize("value, expected", [("1", True), (" TRUE ", True), ("yes", True),
                                             ("on", True), ("0", False), ("False", False),
                                             ("no", False), ("off", False), ("", False)])
def test_env_flag_reads_every_spelling_one_way(monkeypatch, value, expected):
    monkeypatch.setenv("SKTRANSFER_TEST_FLAG", value)
    assert env_flag("SKTRANSFER_TEST_FLAG") is expected
    monkeypatch.delenv("SKTRANSFER_TEST_FLAG")
    assert env_flag("SKTRANSFER_TEST_FLAG") is False
    monkeypatch.setenv("SKTRANSFER_TEST_FLAG", "ja")
    with pytest.raises(ValueError, match="SKTRANSFER_TEST_FLAG='ja' is not a boolean"):
        env_flag("SKTRANSFER_TEST_FLAG")
