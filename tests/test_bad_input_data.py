"""Bad input to the data subcommands: one line naming the culprit, exit 2, nothing half-written.

Each row of the tables below runs ``python -m asymcl ...`` in a fresh process (as a user
would, through `cli_probe.run_cli`) with one bad value or one damaged input, and asserts:
exit status 2, exactly one ``error:`` line that names every culprit, no traceback, and what
is left in the output folder afterwards (nothing, or the previous contents byte for byte).
Fixtures are the synthetic datasets in the official formats (`asymcl.data.synthetic`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from asymcl.data import fmnist, isic
from asymcl.data.synthetic import synth_fmnist, synth_isic
from cli_probe import SRC, assert_input_error, run_cli


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, Path]:
    """Synthetic sources, downloaded raw folders, an ISIC manifest and damaged copies."""
    root = tmp_path_factory.mktemp("bad_input")
    synth_fmnist(root / "fm_syn", per_class=4, seed=3)
    synth_isic(root / "is_syn", per_class=6, other_per_class=1, seed=3)
    for dataset, syn, raw in (("fmnist", "fm_syn", "fm_raw"), ("isic2018", "is_syn", "is_raw")):
        done = run_cli(["download", dataset, "--source", root / syn, "--out", root / raw,
                        "--checksums", root / syn / "SHA256SUMS"])
        assert done.returncode == 0, done.stderr
    done = run_cli(["subset", "--dataset", "isic2018", "--raw", root / "is_raw", "--seed", "0",
                    "--out", root / "is_sub"])
    assert done.returncode == 0, done.stderr
    (root / "a_file").write_text("not a folder\n")

    # A mirror whose train labels are a truncated gzip, with a checksum list made to match it.
    _mirror_with_matching_checksum(root / "fm_syn", root / "fm_cut", "train-labels-idx1-ubyte.gz", fmnist.FILE_NAMES)
    _mirror_with_matching_checksum(root / "is_syn", root / "is_cut", isic.GT_ZIP,
                                   [isic.INPUT_ZIP, isic.GT_ZIP, isic.METADATA_CSV])
    # A raw FMNIST folder whose train images are a truncated idx.
    shutil.copytree(root / "fm_raw", root / "fm_raw_cut")
    victim = root / "fm_raw_cut" / "train-images-idx3-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[:200])
    # Image folders with one damaged test-split image: truncated, and text named .jpg.
    test_id = [line.split(",")[0] for line in (root / "is_sub" / "manifest.csv").read_text().splitlines()
               if line.endswith(",test")][-1]
    for name, damage in (("img_cut", lambda b: b[:300]), ("img_text", lambda b: b"<html>not an image</html>\n")):
        shutil.copytree(root / "is_raw" / "images", root / name)
        jpg = root / name / f"{test_id}.jpg"
        jpg.write_bytes(damage(jpg.read_bytes()))
    (root / "bad_manifest.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff binary")
    (root / "ghost_manifest.csv").write_text("id,label,split\nISIC_9999999,MEL,train\nISIC_9999998,DF,test\n")
    (root / "bad_sums").write_text("not-a-checksum  train-images-idx3-ubyte.gz\n")
    return {"root": root, "test_id": Path(test_id)}


def _mirror_with_matching_checksum(src: Path, dest: Path, victim: str, names: list[str]) -> None:
    dest.mkdir()
    lines = []
    for name in names:
        data = (src / name).read_bytes()
        if name == victim:
            data = data[: len(data) - 40]
        (dest / name).write_bytes(data)
        lines.append(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
    (dest / "SHA256SUMS").write_text("".join(lines))


@dataclass
class Probe:
    """One bad invocation. ``{name}`` in args is a path under the fixture root; ``{out}`` a fresh folder."""

    args: list[str]
    culprits: list[str]
    prior: str | None = None  # fixture folder copied to {out} first: its bytes must survive
    kept: list[str] = field(default_factory=list)  # files a failing run may leave in {out} (verified ones)


FM = ["download", "fmnist", "--source", "{fm_syn}", "--checksums", "{fm_syn}/SHA256SUMS", "--out", "{out}"]
IS = ["download", "isic2018", "--source", "{is_syn}", "--checksums", "{is_syn}/SHA256SUMS", "--out", "{out}"]
SUB = ["subset", "--dataset", "fmnist", "--raw", "{fm_raw}", "--out", "{out}"]
RES = ["resize", "--manifest", "{is_sub}/manifest.csv", "--images", "{is_raw}/images", "--out", "{out}"]

PROBES = {
    # download fmnist: numbers
    "download-retries-negative": Probe(FM + ["--retries", "-1"], ["--retries -1", "[0, 100]"]),
    "download-retries-huge": Probe(FM + ["--retries", "1000000"], ["--retries 1000000"]),
    "download-retries-not-int": Probe(FM + ["--retries", "inf"], ["--retries", "'inf'"]),
    # download fmnist: paths
    "download-checksums-folder": Probe(FM + ["--checksums", "{fm_syn}"], ["--checksums", "is a folder"]),
    "download-checksums-missing": Probe(FM + ["--checksums", "{root}/nope"], ["--checksums", "nope", "does not exist"]),
    "download-checksums-garbage": Probe(FM + ["--checksums", "{bad_sums}"], ["bad_sums:1", "64 hex"]),
    "download-source-missing": Probe(FM + ["--source", "{root}/nope"], ["--source", "nope"]),
    "download-source-file": Probe(FM + ["--source", "{a_file}"], ["--source", "a_file", "is a file"]),
    "download-out-file": Probe(FM + ["--out", "{a_file}"], ["--out", "a_file", "existing file"]),
    "download-out-below-file": Probe(FM + ["--out", "{a_file}/sub"], ["--out", "a_file", "is a file"]),
    # download fmnist: damaged sources
    "download-truncated-gz-matching-checksum": Probe(
        FM + ["--source", "{fm_cut}", "--checksums", "{fm_cut}/SHA256SUMS"],
        ["train-labels-idx1-ubyte.gz", "cannot decompress", "not kept"],
        kept=["train-images-idx3-ubyte.gz"],  # verified and well-formed, fetched before the bad one
    ),
    "download-network-down": Probe(FM + ["--source", "http://127.0.0.1:9/", "--retries", "0"],
                                   ["could not fetch", "127.0.0.1:9", "1 attempts"]),
    # download isic2018
    "isic-retries-negative": Probe(IS + ["--retries", "-2"], ["--retries -2"]),
    "isic-unknown-class": Probe(IS + ["--classes", "MEL", "FOO"], ["--classes", "FOO", "allowed"]),
    "isic-metadata-source-missing": Probe(IS + ["--metadata-source", "{root}/nope"], ["--metadata-source", "nope"]),
    "isic-truncated-zip-matching-checksum": Probe(
        IS + ["--source", "{is_cut}", "--checksums", "{is_cut}/SHA256SUMS"],
        [isic.GT_ZIP, "not a readable zip", "not kept"], kept=[isic.INPUT_ZIP],
    ),
    # subset: seeds and numbers
    "subset-seed-negative": Probe(SUB + ["--seed", "-1"], ["--seed -1", "4294967295"]),
    "subset-seed-2^32": Probe(SUB + ["--seed", str(2**32)], ["--seed 4294967296"]),
    "subset-seed-2^64": Probe(SUB + ["--seed", str(2**64)], [f"--seed {2**64}"]),
    "subset-total-empty-test": Probe(SUB + ["--seed", "0", "--ratio", "1:1", "--total", "2"],
                                     ["class 0 gets no test image", "1 train + 0 test", "--total"]),
    "subset-total-empty-train": Probe(SUB + ["--seed", "0", "--ratio", "1:1", "--total", "2", "--test-fraction", "0.9"],
                                      ["gets no train image", "0 train + 1 test"]),
    "subset-total-zero": Probe(SUB + ["--seed", "0", "--ratio", "1:1", "--total", "0"], ["--total 0"]),
    "subset-total-negative": Probe(SUB + ["--seed", "0", "--ratio", "1:1", "--total", "-5"], ["--total -5"]),
    "subset-total-huge": Probe(SUB + ["--seed", "0", "--ratio", "1:1", "--total", str(10**12)], [f"--total {10**12}"]),
    "subset-total-too-many": Probe(SUB + ["--seed", "0", "--ratio", "1:1", "--total", "100"],
                                   ["class 0 has only 4 images", "asks for 50"]),
    "subset-test-fraction-nan": Probe(SUB + ["--seed", "0", "--test-fraction", "nan"], ["--test-fraction nan"]),
    "subset-test-fraction-inf": Probe(SUB + ["--seed", "0", "--test-fraction", "inf"], ["--test-fraction inf"]),
    "subset-test-fraction-one": Probe(SUB + ["--seed", "0", "--test-fraction", "1"], ["--test-fraction 1", "(0, 1)"]),
    "subset-test-fraction-negative": Probe(SUB + ["--seed", "0", "--test-fraction", "-0.3"], ["--test-fraction -0.3"]),
    "subset-imbalance-nan": Probe(SUB + ["--seed", "0", "--imbalance-factor", "nan", "--max-per-class", "4"],
                                  ["--imbalance-factor nan"]),
    "subset-imbalance-inf": Probe(SUB + ["--seed", "0", "--imbalance-factor", "inf", "--max-per-class", "4"],
                                  ["--imbalance-factor inf"]),
    "subset-imbalance-below-one": Probe(SUB + ["--seed", "0", "--imbalance-factor", "0.5", "--max-per-class", "4"],
                                        ["--imbalance-factor 0.5"]),
    "subset-max-per-class-zero": Probe(SUB + ["--seed", "0", "--imbalance-factor", "2", "--max-per-class", "0"],
                                       ["--max-per-class 0"]),
    "subset-ratio-inf": Probe(SUB + ["--seed", "0", "--ratio", "inf:1", "--total", "4"], ["'inf:1'", "positive"]),
    "subset-ratio-negative": Probe(SUB + ["--seed", "0", "--ratio", "1:-1", "--total", "4"], ["'1:-1'"]),
    "subset-ratio-text": Probe(SUB + ["--seed", "0", "--ratio", "a:b", "--total", "4"], ["'a:b'", "e.g. 98:2"]),
    "subset-ratio-parts": Probe(SUB + ["--seed", "0", "--ratio", "98:1:1", "--total", "4"], ["3 parts", "2 classes"]),
    "subset-image-size-zero": Probe(SUB + ["--seed", "0", "--image-size", "0"], ["--image-size 0"]),
    "subset-image-size-huge": Probe(SUB + ["--seed", "0", "--image-size", "100000"], ["--image-size 100000", "4096"]),
    "subset-image-size-isic": Probe(["subset", "--dataset", "isic2018", "--raw", "{is_raw}", "--seed", "0",
                                     "--image-size", "64", "--out", "{out}"], ["--image-size", "resize --size"]),
    "subset-unknown-class": Probe(SUB + ["--seed", "0", "--classes", "0", "11"], ["['11']", "allowed"]),
    # subset: paths and damaged inputs
    "subset-out-file": Probe(SUB + ["--seed", "0", "--out", "{a_file}"], ["--out", "a_file", "existing file"]),
    "subset-raw-missing": Probe(SUB + ["--seed", "0", "--raw", "{root}/nope"], ["--raw", "nope", "asymcl download"]),
    "subset-raw-file": Probe(SUB + ["--seed", "0", "--raw", "{a_file}"], ["--raw", "a_file", "is a file"]),
    "subset-raw-truncated-idx": Probe(SUB + ["--seed", "0", "--raw", "{fm_raw_cut}"],
                                      ["train-images-idx3-ubyte.gz", "cannot decompress"]),
    "subset-isic-raw-without-labels": Probe(["subset", "--dataset", "isic2018", "--raw", "{fm_raw}", "--seed", "0",
                                             "--out", "{out}"], ["labels.csv", "asymcl download isic2018"]),
    # resize: numbers
    "resize-size-zero": Probe(RES + ["--size", "0"], ["--size 0", "[1, 4096]"]),
    "resize-size-negative": Probe(RES + ["--size", "-3"], ["--size -3"]),
    "resize-size-huge": Probe(RES + ["--size", "100000"], ["--size 100000"]),
    # resize: paths and damaged inputs
    "resize-manifest-missing": Probe(RES + ["--manifest", "{root}/nope.csv"], ["--manifest", "nope.csv", "does not exist"]),
    "resize-manifest-folder": Probe(RES + ["--manifest", "{is_sub}"], ["--manifest", "is a folder"]),
    "resize-manifest-binary": Probe(RES + ["--manifest", "{bad_manifest}"], ["bad_manifest.csv"]),
    "resize-manifest-unknown-images": Probe(RES + ["--manifest", "{ghost_manifest}"], ["ISIC_9999999.jpg", "does not exist"]),
    "resize-classes-missing-label": Probe(RES + ["--classes", "MEL"], ["['DF']", "--classes"]),
    "resize-images-missing": Probe(RES + ["--images", "{root}/nope"], ["--images", "nope"]),
    "resize-images-file": Probe(RES + ["--images", "{a_file}"], ["--images", "a_file", "is a file"]),
    "resize-out-file": Probe(RES + ["--out", "{a_file}"], ["--out", "a_file", "existing file"]),
    "resize-truncated-jpeg-keeps-old-folder": Probe(RES + ["--images", "{img_cut}", "--size", "12"],
                                                    ["img_cut/{test_id}.jpg", "truncated"], prior="old_resize"),
    "resize-text-as-jpeg-keeps-old-folder": Probe(RES + ["--images", "{img_text}", "--size", "12"],
                                                  ["img_text/{test_id}.jpg", "not a readable image"], prior="old_resize"),
    # synth
    "synth-fmnist-per-class-negative": Probe(["synth", "fmnist", "--per-class", "-1", "--out", "{out}"], ["--per-class -1"]),
    "synth-fmnist-per-class-huge": Probe(["synth", "fmnist", "--per-class", str(10**9), "--out", "{out}"],
                                         [f"--per-class {10**9}"]),
    "synth-fmnist-test-per-class-negative": Probe(["synth", "fmnist", "--test-per-class", "-1", "--out", "{out}"],
                                                  ["--test-per-class -1"]),
    "synth-fmnist-seed-negative": Probe(["synth", "fmnist", "--seed", "-1", "--out", "{out}"], ["--seed -1"]),
    "synth-fmnist-out-file": Probe(["synth", "fmnist", "--out", "{a_file}"], ["--out", "a_file"]),
    "synth-isic-other-negative": Probe(["synth", "isic2018", "--other-per-class", "-1", "--out", "{out}"],
                                       ["--other-per-class -1"]),
    "synth-isic-per-class-zero": Probe(["synth", "isic2018", "--per-class", "0", "--out", "{out}"], ["--per-class 0"]),
    "synth-isic-seed-huge": Probe(["synth", "isic2018", "--seed", str(2**40), "--out", "{out}"], [f"--seed {2**40}"]),
}


def _fill(text: str, names: dict[str, str]) -> str:
    return text.format(**names)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.is_dir() else {}


@pytest.fixture(scope="module")
def old_resize(env) -> Path:
    """A finished resize output, to be re-resized (and survive a failed re-resize)."""
    root = env["root"]
    done = run_cli(RES_ARGS(root, root / "old_resize"))
    assert done.returncode == 0, done.stderr
    return root / "old_resize"


def RES_ARGS(root: Path, out: Path) -> list[str]:  # noqa: N802 (reads as a constant)
    return ["resize", "--manifest", root / "is_sub" / "manifest.csv", "--images", root / "is_raw" / "images",
            "--size", "10", "--out", out]


@pytest.mark.parametrize("name", sorted(PROBES))
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(name, env, old_resize, tmp_path):
    probe = PROBES[name]
    root = env["root"]
    out = tmp_path / "out"
    names = {p.name.split(".")[0]: str(p) for p in root.iterdir()} | {"root": str(root), "out": str(out),
                                                       "test_id": str(env["test_id"])}
    if probe.prior:
        shutil.copytree(root / probe.prior, out)
    before = _snapshot(out)
    result = run_cli([_fill(a, names) for a in probe.args], cwd=tmp_path)
    assert_input_error(result, *(_fill(c, names) for c in probe.culprits))
    after = _snapshot(out)
    if probe.prior:
        assert after == before, "a failed run changed the existing output folder"
    else:
        assert sorted(after) == sorted(probe.kept), f"left behind in {out}: {sorted(after)}"
        if probe.kept:  # only complete, verified copies of the source may stay
            args = [_fill(a, names) for a in probe.args]
            source = Path(args[len(args) - 1 - args[::-1].index("--source") + 1])  # the last --source given
            for kept in probe.kept:
                assert after[kept] == (source / kept).read_bytes()
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()], "temporary files left behind"


# --- faults of the local side ------------------------------------------------------------


def test_download_disk_full_is_a_local_error_not_retried(env, tmp_path):
    """A write limit (EFBIG via ``ulimit -f``; ENOSPC behaves the same) names --out, no retry."""
    root, out = env["root"], tmp_path / "out"
    command = (f"ulimit -f 1 && exec {sys.executable} -m asymcl download fmnist --source {root / 'fm_syn'} "
               f"--checksums {root / 'fm_syn' / 'SHA256SUMS'} --out {out} --retries 3")
    environment = dict(os.environ, PYTHONPATH=str(SRC))
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=environment, timeout=120)
    from cli_probe import CliResult

    line = assert_input_error(CliResult(done.returncode, done.stdout, done.stderr),
                              f"cannot write {out}/train-images-idx3-ubyte.gz", "File too large", "--out")
    assert "could not fetch" not in line and "retrying" not in done.stderr
    assert list(out.iterdir()) == []


def test_subset_disk_full_is_one_line_and_leaves_the_folder_empty(env, tmp_path):
    """A write limit while `subset` saves train.pt (torch.save reports it as a RuntimeError
    around the OSError, or the other way round): one line naming the folder, no partial file."""
    out = tmp_path / "sub"
    command = (f"ulimit -f 2 && exec {sys.executable} -m asymcl subset --dataset fmnist "
               f"--raw {env['root'] / 'fm_raw'} --seed 1 --out {out}")
    environment = dict(os.environ, PYTHONPATH=str(SRC))
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=environment, timeout=120)
    from cli_probe import CliResult

    assert_input_error(CliResult(done.returncode, done.stdout, done.stderr), f"cannot write into {out}",
                       "File too large", "nothing was half-written")
    assert list(out.iterdir()) == []


def test_staging_finds_the_os_error_behind_torchs_runtime_error(tmp_path):
    """torch.save can wrap a full disk into ``RuntimeError: PytorchStreamWriter failed ...``
    whose cause is the OSError: still the user's disk, one line, no staged file left."""
    import errno

    from asymcl.data.staging import staged_outputs
    from asymcl.errors import InputError

    out = tmp_path / "sub"
    with pytest.raises(InputError, match=f"cannot write into {out}: No space left on device"):
        with staged_outputs(out, ["train.pt", "test.pt"]) as temps:
            temps["train.pt"].write_bytes(b"half")
            try:
                raise OSError(errno.ENOSPC, "No space left on device")
            except OSError as err:
                raise RuntimeError("PytorchStreamWriter failed writing file data/0") from err
    assert list(out.iterdir()) == []
    # anything else is a bug and keeps its type
    with pytest.raises(RuntimeError, match="a bug"):
        with staged_outputs(out, ["train.pt"]):
            raise RuntimeError("a bug")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_download_read_only_out(env, tmp_path):
    out = tmp_path / "ro"
    out.mkdir(mode=0o555)
    root = env["root"]
    result = run_cli(["download", "fmnist", "--source", root / "fm_syn", "--checksums", root / "fm_syn" / "SHA256SUMS",
                      "--out", out])
    assert_input_error(result, "--out", str(out), "not writable")


def test_stale_temps_of_a_killed_run_are_removed_live_ones_kept(env, tmp_path):
    out = tmp_path / "sub"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    stale = out / f".train.pt.asymcl-partial-{host}-{int(dead.stdout)}-0badc0de.tmp"
    live = out / f".test.pt.asymcl-partial-{host}-{os.getpid()}-0badc0de.tmp"
    other = out / "notes.txt"
    for path in (stale, live, other):
        path.write_text("x")
    done = run_cli(["subset", "--dataset", "fmnist", "--raw", env["root"] / "fm_raw", "--seed", "1", "--out", out])
    assert done.returncode == 0, done.stderr
    assert not stale.exists() and live.exists() and other.read_text() == "x"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "manifest.csv", "notes.txt", "test.pt", "train.pt"]
