"""The download step of a node, for real, against an HTTP server on 127.0.0.1 that stands in
for Apache's archive (or a private cloud's mirror of it): a fake Hadoop or Zeppelin tarball
with the right and the wrong checksum, unpacked where the framework's commands look for it.
Nothing is fetched from Apache here (it is not reachable from this machine)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from file_server import FileServer

from disco.cluster import plan
from disco.cluster.models import Cluster, Node
from disco.errors import DiscoError
from disco.frameworks.catalog import load_catalog
from disco.frameworks.downloads import parse_checksums, resolve_download
from disco.frameworks.model import DownloadDef
from disco.node.bundle import BundleError, Download, NodeBundle
from disco.node.downloads import UNPACKED_MARK, ChecksumError, UnpackError, ensure_download

CATALOG = load_catalog()
HADOOP_PATH = "/hadoop/common/hadoop-3.4.3/hadoop-3.4.3.tar.gz"
ZEPPELIN_PATH = "/zeppelin/zeppelin-0.12.0/zeppelin-0.12.0-bin-all.tgz"


def tarball(top: str, files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


FAKE_HADOOP = tarball("hadoop-3.4.3", {"bin/hdfs": "#!/bin/sh\necho fake hdfs\n", "etc/hadoop/core-site.xml": ""})
FAKE_ZEPPELIN = tarball("zeppelin-0.12.0-bin-all", {"bin/zeppelin.sh": "#!/bin/sh\necho fake zeppelin\n"})


@pytest.fixture()
def mirror(monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    """A mirror of the Apache archive's layout on 127.0.0.1, named by DISCO_DOWNLOAD_MIRROR."""
    server = FileServer("127.0.0.1")
    server.files[HADOOP_PATH] = FAKE_HADOOP
    server.files[ZEPPELIN_PATH] = FAKE_ZEPPELIN
    monkeypatch.setenv("DISCO_DOWNLOAD_MIRROR", server.url(""))
    monkeypatch.delenv("DISCO_DOWNLOAD_CHECKSUMS", raising=False)
    try:
        yield server
    finally:
        server.close()


def node_download(definition: DownloadDef, require_checksum: bool = True) -> Download:
    url, sha256, sha512 = resolve_download(definition, require_checksum=require_checksum)
    return Download(url, sha256, definition.dest, sha512, definition.unpack)


def hadoop_definition() -> DownloadDef:
    (definition,) = CATALOG.get("hadoop").install.downloads
    return definition


def test_the_mirror_replaces_the_base_and_a_right_sha512_unpacks_the_tree(mirror: FileServer, tmp_path: Path) -> None:
    pinned = hadoop_definition()
    # The catalogue's download, with the fake's checksum in place of Apache's.
    fake = pinned.model_copy(update={"sha512": hashlib.sha512(FAKE_HADOOP).hexdigest()})
    download = node_download(fake)
    assert download.url == mirror.url(HADOOP_PATH)
    assert ensure_download(download, tmp_path) is True
    home = tmp_path / "hadoop" / "hadoop-3.4.3"  # where HADOOP_HOME points: {{ software_dir }}/hadoop/hadoop-3.4.3
    assert (home / "bin" / "hdfs").read_text() == "#!/bin/sh\necho fake hdfs\n"
    assert (tmp_path / "hadoop" / UNPACKED_MARK).read_text().strip() == f"sha512:{download.sha512}"
    assert (tmp_path / "cache" / "sha512" / download.sha512).is_file()
    # Again: nothing fetched, nothing changed.
    assert ensure_download(download, tmp_path) is False
    assert mirror.requests == [HADOOP_PATH]


def test_the_pinned_sha512_refuses_anything_else_and_leaves_nothing(mirror: FileServer, tmp_path: Path) -> None:
    download = node_download(hadoop_definition())  # Apache's published SHA-512, the fake's differs
    assert download.sha512.startswith("e25be7e5") and len(download.sha512) == 128
    with pytest.raises(ChecksumError) as info:
        ensure_download(download, tmp_path)
    assert str(info.value) == (f"{mirror.url(HADOOP_PATH)}: SHA-512 is {hashlib.sha512(FAKE_HADOOP).hexdigest()}, "
                               f"expected {download.sha512}")
    assert not (tmp_path / "hadoop").exists()
    assert list((tmp_path / "cache" / "sha512").iterdir()) == []  # no partial file kept


def test_zeppelin_needs_the_admins_checksum_before_any_host_fetches_it(
        mirror: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster(id="c0ffee00-0000-4000-8000-000000000000", tenant="t", name="z", provider="ssh",
                      spec={"resolved_frameworks": CATALOG.resolve(["zeppelin"]), "properties": {}},
                      state="installing", target="running", workers=0)
    cluster.nodes = [Node(name="master", role="master", index=0, host="10.0.0.10", target="running")]
    with pytest.raises(DiscoError, match="zeppelin-0.12.0-bin-all.tgz has no checksum") as info:
        plan.node_needs(cluster, CATALOG)
    assert info.value.code == "missing_checksum"
    # Nodes on this machine download nothing: they need no checksum.
    (unchecked,) = plan.node_needs(cluster, CATALOG, require_checksums=False).downloads
    assert unchecked.sha512 == "" and unchecked.sha256 == ""
    # The admin copies the line Apache publishes (BSD style) into the checksums file.
    digest = hashlib.sha512(FAKE_ZEPPELIN).hexdigest()
    checksums = tmp_path / "checksums.txt"
    checksums.write_text(f"# from the archive's .sha512 files\nSHA512 (zeppelin-0.12.0-bin-all.tgz) = {digest}\n")
    monkeypatch.setenv("DISCO_DOWNLOAD_CHECKSUMS", str(checksums))
    (download,) = plan.node_needs(cluster, CATALOG).downloads
    assert (download.url, download.sha512, download.dest, download.unpack) == (
        mirror.url(ZEPPELIN_PATH), digest, "zeppelin", True)
    prefix = tmp_path / "prefix"
    # As the SSH provider puts it into the node's bundle.
    assert ensure_download(Download(download.url, download.sha256, download.dest, download.sha512,
                                    download.unpack), prefix) is True
    assert (prefix / "zeppelin" / "zeppelin-0.12.0-bin-all" / "bin" / "zeppelin.sh").is_file()


def test_the_checksums_file_may_not_contradict_a_pinned_checksum(
        mirror: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checksums = tmp_path / "checksums.txt"
    checksums.write_text(f"{'0' * 128}  hadoop-3.4.3.tar.gz\n")
    monkeypatch.setenv("DISCO_DOWNLOAD_CHECKSUMS", str(checksums))
    with pytest.raises(DiscoError, match="another checksum"):
        node_download(hadoop_definition())


def test_checksum_lines_in_both_of_apaches_styles() -> None:
    sha512, sha256 = "ab" * 64, "cd" * 32
    assert parse_checksums(f"{sha512}  hadoop-3.4.3.tar.gz\nSHA256 (x.jar) = {sha256.upper()}\n") == {
        "hadoop-3.4.3.tar.gz": ("sha512", sha512), "x.jar": ("sha256", sha256)}
    with pytest.raises(DiscoError, match="cannot read the line"):
        parse_checksums("SHA512 (x.jar) = abc\n")


def test_a_new_version_replaces_the_unpacked_tree(mirror: FileServer, tmp_path: Path) -> None:
    first = node_download(hadoop_definition().model_copy(update={"sha512": hashlib.sha512(FAKE_HADOOP).hexdigest()}))
    ensure_download(first, tmp_path)
    newer = tarball("hadoop-3.4.3", {"bin/hdfs": "#!/bin/sh\necho newer\n"})
    mirror.files[HADOOP_PATH] = newer
    second = node_download(hadoop_definition().model_copy(update={"sha512": hashlib.sha512(newer).hexdigest()}))
    assert ensure_download(second, tmp_path) is True
    assert (tmp_path / "hadoop" / "hadoop-3.4.3" / "bin" / "hdfs").read_text().endswith("newer\n")
    assert not (tmp_path / "hadoop" / "hadoop-3.4.3" / "etc").exists()  # nothing of the old tree is left


@pytest.mark.parametrize("member", ["../escape.txt", "/etc/escape.txt"])
def test_an_archive_that_climbs_out_is_refused(mirror: FileServer, tmp_path: Path, member: str) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    evil = buffer.getvalue()
    mirror.files["/evil.tar.gz"] = evil
    download = Download(mirror.url("/evil.tar.gz"), "", "evil", hashlib.sha512(evil).hexdigest(), True)
    with pytest.raises(UnpackError, match="outside"):
        ensure_download(download, tmp_path)
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "escape.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == []


def test_a_bundle_carries_sha512_and_unpack_and_refuses_two_or_no_checksums() -> None:
    download = Download("https://mirror.example/h.tar.gz", "", "hadoop", "ab" * 64, True)
    bundle = NodeBundle(cluster_id="c1", node="master", role="master", host="10.0.0.5", downloads=[download],
                        log_token_sha256="0" * 64)
    assert NodeBundle.from_json(bundle.to_json()) == bundle
    with pytest.raises(BundleError, match="one checksum"):
        NodeBundle(cluster_id="c1", node="master", role="master", host="10.0.0.5", log_token_sha256="0" * 64,
                   downloads=[Download("https://mirror.example/h.tar.gz", "cd" * 32, "hadoop", "ab" * 64)])
    with pytest.raises(BundleError, match="one checksum"):
        NodeBundle(cluster_id="c1", node="master", role="master", host="10.0.0.5", log_token_sha256="0" * 64,
                   downloads=[Download("https://mirror.example/h.tar.gz", "", "hadoop")])
