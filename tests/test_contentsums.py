"""The raw folders' content lists (asymcl.contentsums), against sha256sum's format."""

from __future__ import annotations

import hashlib
import os

from asymcl.contentsums import main


def test_content_list_is_sorted_sha256sum_lines_relative_to_the_root(tmp_path):
    (tmp_path / "images").mkdir()
    files = {"b.gz": b"bee", "a.csv": b"ay", "images/x.jpg": b"\x00\x01"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    out = tmp_path / "CONTENT.sha256"
    assert main(["--root", str(tmp_path), "--out", str(out),
                 str(tmp_path / "b.gz"), str(tmp_path / "a.csv"), str(tmp_path / "images")]) == 0
    expected = "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in sorted(files))
    assert out.read_text() == expected
    # same bytes with new mtimes: the same list; other bytes: another list
    os.utime(tmp_path / "b.gz", (1, 1))
    main(["--root", str(tmp_path), "--out", str(out), str(tmp_path / "b.gz"), str(tmp_path / "a.csv"), str(tmp_path / "images")])
    assert out.read_text() == expected
    (tmp_path / "b.gz").write_bytes(b"bee!")
    main(["--root", str(tmp_path), "--out", str(out), str(tmp_path / "b.gz"), str(tmp_path / "a.csv"), str(tmp_path / "images")])
    assert out.read_text() != expected
