"""Results are written whole or not at all, with the permissions a normal file gets."""

import os
import stat

import pytest

from dymn.util.atomic import atomic_write, write_text
from dymn.util.errors import OutputError


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_new_files_follow_the_umask(tmp_path):
    # finding 3: mkstemp's 0600 made every result unreadable to other users
    old = os.umask(0o022)
    try:
        assert _mode(write_text(tmp_path / "a.json", "{}")) == 0o644
        os.umask(0o002)
        assert _mode(write_text(tmp_path / "b.json", "{}")) == 0o664
    finally:
        os.umask(old)


def test_replacing_a_file_keeps_its_mode(tmp_path):
    p = tmp_path / "out.csv"
    p.write_text("old")
    os.chmod(p, 0o640)
    write_text(p, "new")
    assert p.read_text() == "new" and _mode(p) == 0o640


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    p = tmp_path / "out.txt"
    p.write_text("old")

    def boom(tmp):
        open(tmp, "w").write("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match="No space left"):
        atomic_write(p, boom)
    assert p.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["out.txt"]


def test_special_files_are_written_in_place(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    import threading

    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo).read()))
    reader.start()
    write_text(fifo, "hello")
    reader.join(5)
    assert got == ["hello"] and stat.S_ISFIFO(os.stat(fifo).st_mode)
    write_text("/dev/null", "discarded")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a device node needs root")
def test_device_node_stays_a_device(tmp_path):
    node = tmp_path / "null"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null twin
    write_text(node, "x")
    assert stat.S_ISCHR(os.stat(node).st_mode)


def test_clear_errors(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        write_text(tmp_path / "no" / "x.txt", "x")
    with pytest.raises(OutputError, match="is a directory"):
        write_text(tmp_path, "x")


def test_folder_appears_whole_and_replaces_the_old_one_only_when_complete(tmp_path):
    from dymn.util.atomic import atomic_folder

    target = tmp_path / "site"
    old = os.umask(0o022)
    try:
        atomic_folder(target, lambda d: (d / "a.txt").write_text("one"))
    finally:
        os.umask(old)
    assert (target / "a.txt").read_text() == "one"
    assert _mode(target) == 0o755  # a new folder's mode, not mkdtemp's 0700

    def broken(d):
        (d / "a.txt").write_text("two")
        raise OSError("disk full")

    with pytest.raises(OutputError, match="disk full"):
        atomic_folder(target, broken)
    assert (target / "a.txt").read_text() == "one"  # the old folder, as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # nothing left behind

    def other(d):
        (d / "b.txt").write_text("new")

    atomic_folder(target, other)
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        atomic_folder(tmp_path / "file", other)
