import hashlib

import pytest
from idx_files import serve

from difflab.core.errors import DataError
from difflab.data.download import download

CONTENT = bytes(range(256)) * 5000  # > one read chunk


@pytest.fixture
def server(tmp_path):
    (tmp_path / "good").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "good" / "file.bin").write_bytes(CONTENT)
    (tmp_path / "bad" / "file.bin").write_bytes(CONTENT[:-1] + b"!")
    with serve(tmp_path) as url:
        yield url


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_download_verifies_and_writes(tmp_path, server):
    dest = tmp_path / "out" / "file.bin"
    assert download([server + "good/file.bin"], dest, md5=_md5(CONTENT)) == dest
    assert dest.read_bytes() == CONTENT
    assert [p.name for p in dest.parent.iterdir()] == ["file.bin"]


def test_wrong_checksum_names_file_and_both_sums_and_leaves_nothing(tmp_path, server):
    dest = tmp_path / "out" / "file.bin"
    served = _md5(CONTENT[:-1] + b"!")
    with pytest.raises(DataError, match=f"file.bin.*expected md5 {_md5(CONTENT)}, got {served}"):
        download([server + "bad/file.bin"], dest, md5=_md5(CONTENT))
    assert list(dest.parent.iterdir()) == []


def test_falls_back_to_next_mirror(tmp_path, server):
    dest = tmp_path / "out" / "file.bin"
    mirrors = [server + "missing/file.bin", server + "bad/file.bin", server + "good/file.bin"]
    download(mirrors, dest, md5=_md5(CONTENT))
    assert dest.read_bytes() == CONTENT


def test_all_mirrors_failing_lists_each(tmp_path, server):
    dest = tmp_path / "out" / "file.bin"
    with pytest.raises(DataError, match="missing/file.bin: HTTP Error 404.*bad/file.bin: checksum"):
        download([server + "missing/file.bin", server + "bad/file.bin"], dest, md5=_md5(CONTENT))
    assert list(dest.parent.iterdir()) == []
