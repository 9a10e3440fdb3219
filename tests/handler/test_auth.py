"""API keys from a mounted Secret (handler/auth.py)."""

from __future__ import annotations

import os

import pytest

from handler.auth import KEYS_FILE_ENV, ApiKeys, Unauthorized


@pytest.fixture
def keys_file(tmp_path):
    path = tmp_path / "api-keys"
    path.write_text("first-key\n\n  second-key  \n")
    return path


def test_accepts_each_listed_key_and_refuses_others(keys_file):
    keys = ApiKeys(keys_file)
    keys.check({"authorization": "Bearer first-key"})
    keys.check({"authorization": "bearer second-key"})
    for header in (
        {},
        {"authorization": "Bearer"},
        {"authorization": "Basic first-key"},
        {"authorization": "Bearer first"},
        {"authorization": "Bearer first-key2"},
    ):
        with pytest.raises(Unauthorized) as error:
            keys.check(header)
        assert error.value.field == "authorization"


def test_rotated_secret_is_picked_up_without_a_restart(keys_file):
    keys = ApiKeys(keys_file)
    keys.check({"authorization": "Bearer first-key"})
    keys_file.write_text("rotated-key\n")
    stat = keys_file.stat()
    os.utime(keys_file, (stat.st_atime, stat.st_mtime + 5))  # a new mtime, as kubelet's swap
    keys.check({"authorization": "Bearer rotated-key"})
    with pytest.raises(Unauthorized):
        keys.check({"authorization": "Bearer first-key"})


def test_from_env_is_off_without_the_variable_and_refuses_an_empty_file(monkeypatch, tmp_path):
    monkeypatch.delenv(KEYS_FILE_ENV, raising=False)
    assert ApiKeys.from_env() is None
    empty = tmp_path / "empty"
    empty.write_text("\n")
    monkeypatch.setenv(KEYS_FILE_ENV, str(empty))
    with pytest.raises(ValueError, match="holds no keys"):
        ApiKeys.from_env()


def test_comment_lines_in_the_keys_file_are_not_keys(tmp_path):
    path = tmp_path / "api-keys"
    path.write_text("# rotated 2026-12-01\nreal-key\n  # old-key\n")
    keys = ApiKeys(path)
    keys.check({"authorization": "Bearer real-key"})
    for comment in ("# rotated 2026-12-01", "#", "# old-key"):
        with pytest.raises(Unauthorized):
            keys.check({"authorization": f"Bearer {comment}"})
