"""bench/file_hash_cache.py runs end to end on a 10 MiB file (a smoke test: the times mean
nothing) and leaves no file behind."""

import tempfile


def test_the_table_has_each_way_of_hashing_and_the_file_is_deleted(
    bench_script, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    bench_script("file_hash_cache").main(["--gib", str(10 / 1024), "--lookups", "3"])
    rows = [line.split("|")[1].strip() for line in capsys.readouterr().out.splitlines()[3:]]
    assert [row.split(",")[0] for row in rows] == ["file_sha256"] * 2 + ["cached_sha256"] * 2
    assert "hit (median of 3)" in rows[-1] and list(tmp_path.iterdir()) == []
