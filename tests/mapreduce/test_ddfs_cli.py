"""The `ddfs` command (the installed console script) against a real master and two nodes:
what each verb prints, and its exit status."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from runtime_fixtures import Cluster, client_cluster  # noqa: E402

DDFS_SCRIPT = Path(sys.executable).parent / "ddfs"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with client_cluster("ddfs-cli", nodes=2, master_args=["--ddfs-tag-replicas", "2"]) as c:
        yield c


def ddfs(*args: str, stdin: str | None = None, cwd: Path | None = None
         ) -> subprocess.CompletedProcess[str]:
    # client_cluster put DISCO_MASTER and DISCO_PORT in the environment the command inherits.
    return subprocess.run([str(DDFS_SCRIPT), *args], capture_output=True, text=True,
                          input=stdin, cwd=cwd, timeout=60, env={**os.environ, "COLUMNS": "200"})


def ok(*args: str, **kwargs: object) -> str:
    done = ddfs(*args, **kwargs)  # type: ignore[arg-type]
    assert done.returncode == 0, f"ddfs {' '.join(args)}: {done.stderr}"
    return done.stdout


def test_push_list_and_read(cluster: Cluster, tmp_path: Path) -> None:
    assert DDFS_SCRIPT.exists()
    (tmp_path / "one.txt").write_text("first file\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "two.txt").write_text("second file\n")
    pushed = ok("push", "cli:files", str(tmp_path / "one.txt"))
    assert len(pushed.splitlines()) == 1 and "/ddfs/vol0/blob/" in pushed
    refused = ddfs("push", "cli:files", str(tmp_path / "dir"))
    assert refused.returncode == 1 and "is a directory" in refused.stderr
    ok("push", "-r", "cli:files", str(tmp_path / "dir"))
    listing = ok("ls", "-r", "cli:")
    assert listing.startswith("cli:files\n") and listing.count("\t") == 2
    blobs = ok("blobs", "cli:files").splitlines()
    assert sorted(line.rsplit("/", 1)[1].split("$")[0] for line in blobs) == ["one_txt", "two_txt"]
    assert sorted(ok("cat", "cli:files").splitlines()) == ["first file", "second file"]
    tag = json.loads(ok("get", "cli:files"))
    assert tag["id"].startswith("cli:files$") and len(tag["urls"]) == 2
    stat = ok("stat", "cli:files").split("\t")
    assert stat[:2] == ["cli:files", tag["id"]] and stat[3] == "2"
    assert ok("exists", "cli:files").strip() == "True"
    missing = ddfs("exists", "cli:nothere")
    assert missing.returncode == 1 and missing.stdout.strip() == "False"
    assert ok("rm", "cli:files").strip() == "deleted cli:files"


def test_tarballs_are_unpacked(cluster: Cluster, tmp_path: Path) -> None:
    archive = tmp_path / "bundle.tar"
    with tarfile.open(archive, "w") as tar:
        for name, text in (("a.txt", b"alpha\n"), ("b.txt", b"beta\n")):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
    ok("push", "-x", "-z", "cli:tar", str(archive))
    blobs = ok("blobs", "cli:tar").split()
    assert sorted(u.rsplit("/", 1)[1].split("$")[0] for u in blobs) == ["a_txt_gz", "b_txt_gz"]
    ok("rm", "cli:tar")


def test_tags_and_attributes(cluster: Cluster) -> None:
    ok("tag", "cli:t", "raw://a", "raw://b1 raw://b2")
    assert ok("urls", "cli:t").splitlines() == ["raw://a", "raw://b1\traw://b2"]
    ok("tag", "cli:t", stdin="raw://c\n")
    assert ok("urls", "cli:t").splitlines()[0] == "raw://c"
    ok("put", "cli:t", "raw://only")
    assert ok("urls", "cli:t").splitlines() == ["raw://only"]
    ok("cp", "cli:t", "cli:copy")
    ok("touch", "cli:empty", "cli:copy")
    assert ok("urls", "cli:empty") == "" and ok("urls", "cli:copy").strip() == "raw://only"
    ok("setattr", "cli:t", "color", "blue")
    ok("setattr", "cli:t", "size", "3")
    assert ok("attrs", "cli:t").splitlines() == ["color\tblue", "size\t3"]
    assert ok("getattr", "cli:t", "color").strip() == "blue"
    ok("delattr", "cli:t", "color")
    gone = ddfs("getattr", "cli:t", "color")
    assert gone.returncode == 1 and "attribute not found" in gone.stderr
    ok("rm", "cli:t", "cli:copy", "cli:empty")
    assert ok("ls", "cli:") == ""


def test_tokens(cluster: Cluster) -> None:
    ok("tag", "cli:locked", "raw://secret")
    ok("chtok", "-r", "cli:locked", "rtok")
    refused = ddfs("urls", "cli:locked")
    assert refused.returncode == 1 and "requires token" in refused.stderr
    assert ok("-t", "rtok", "urls", "cli:locked").strip() == "raw://secret"
    assert ok("exists", "cli:locked").strip() == "True"  # existing, if unreadable
    ok("chtok", "cli:locked", "both")  # no write token yet: anyone may set both
    assert ok("-t", "both", "getattr", "cli:locked", "ddfs:write-token").strip() == "both"
    assert ddfs("rm", "cli:locked").returncode == 1
    ok("-t", "both", "rm", "cli:locked")


def test_chunk_and_xcat(cluster: Cluster, tmp_path: Path) -> None:
    lines = [f"record {i}" for i in range(500)]
    (tmp_path / "lines.txt").write_text("".join(f"{line}\n" for line in lines))
    created = ok("chunk", "-S", "2000", "cli:chunks", "./lines.txt", cwd=tmp_path)
    assert len(created.splitlines()) >= 2
    assert all(line.startswith("created: ") for line in created.splitlines())
    assert ok("xcat", "cli:chunks").splitlines() == lines
    ok("rm", "cli:chunks")


def test_errors_and_usage(cluster: Cluster) -> None:
    bad = ddfs("get", "no/such/tag")
    assert bad.returncode == 1 and bad.stderr.startswith("ddfs: ")
    invalid = ddfs("tag", "bad!name", "raw://x")
    assert invalid.returncode == 1 and "Invalid tag" in invalid.stderr
    assert ddfs("frobnicate").returncode == 2
    assert ddfs("setattr", "cli:x").returncode == 2
    down = ddfs("-M", "http://127.0.0.1:1", "ls")
    assert down.returncode == 1 and "ddfs: " in down.stderr
    assert "push" in ok("--help")
