"""File-system safety helpers: regular files only, atomic outputs."""

import os
import stat

import pytest

from sktransfer._files import atomic_output, check_regular_file


def test_atomic_output_replaces_only_on_success(tmp_path):
    target = tmp_path / "model.joblib"
    target.write_text("old")
    os.chmod(target, 0o640)
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["model.joblib"]
    with atomic_output(target) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith(".joblib")
        with open(tmp, "w") as f:
            f.write("new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["model.joblib"]
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640  # the file keeps its mode


def test_check_regular_file_names_what_it_found(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ValueError, match="named pipe"):
        check_regular_file(tmp_path / "fifo", "image file")
    with pytest.raises(IsADirectoryError):
        check_regular_file(tmp_path, "image file")
    with pytest.raises(FileNotFoundError, match="image file not found"):
        check_regular_file(tmp_path / "nope", "image file")
    if os.path.exists("/dev/null"):
        with pytest.raises(ValueError, match="character device"):
            check_regular_file("/dev/null")
