"""``convcalc.files.write_atomically``, the one writer behind ``export -o``, ``import -o``,
``draw``, ``plot``, ``rf`` and ``memory -o``: whole files or none, with a plain file's mode."""

from __future__ import annotations

import os

import pytest

from convcalc.errors import ConvcalcError
from convcalc.files import write_atomically


def test_a_new_file_gets_the_mode_a_plain_open_gives(tmp_path):
    old = os.umask(0o022)
    try:
        write_atomically(tmp_path / "a.txt", "text")
        with open(tmp_path / "plain.txt", "w") as file:
            file.write("text")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert (tmp_path / "a.txt").read_text() == "text"


def test_a_replaced_file_keeps_its_mode(tmp_path):
    target = tmp_path / "run.sh"
    target.write_text("old")
    target.chmod(0o750)
    write_atomically(target, b"new")
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == 0o750


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.pt"
    target.write_bytes(b"old weights")

    def writer(file):
        file.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, writer)
    assert target.read_bytes() == b"old weights" and sorted(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize(
    ("path", "message"),
    [("{tmp}", "is a folder; fix: give a file name"), ("{tmp}/none/x.svg", "does not exist; fix: create it"),
     ("{tmp}/" + "x" * 300, "cannot use this path")],
)  # fmt: skip
def test_unusable_paths_are_one_line_errors(tmp_path, path, message):
    with pytest.raises(ConvcalcError, match=message):
        write_atomically(path.format(tmp=tmp_path), "x")
