"""The README's word count, exactly as the README shows it, on every input scheme: `raw://`
lines are str, `file://`, `http://` and `tag://` lines bytes (Disco's types under Python 3);
the README's map takes both, so every scheme gives the same counts, with str words."""

from __future__ import annotations

import http.server
import importlib.util
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from runtime_fixtures import Cluster, client_cluster

from disco.core import Job, result_iterator
from disco.ddfs import DDFS

README = Path(__file__).resolve().parents[2] / "README.md"
TEXT = "the quick brown fox\nthe lazy dog\n"
COUNTS = [("brown", 1), ("dog", 1), ("fox", 1), ("lazy", 1), ("quick", 1), ("the", 2)]


def readme_script() -> str:
    blocks = re.findall(r"```python\n(# count_words\.py\n.*?)```", README.read_text(), re.S)
    assert len(blocks) == 1, "README.md should hold one count_words.py block"
    return blocks[0]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with client_cluster("readme-wordcount") as started:
        yield started


@pytest.fixture(scope="module")
def count_words(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The README's script as a module (the client ships it to the nodes with the job)."""
    folder = tmp_path_factory.mktemp("readme")
    (folder / "count_words.py").write_text(readme_script())
    spec = importlib.util.spec_from_file_location("count_words", folder / "count_words.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["count_words"] = module
    sys.path.insert(0, str(folder))
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(folder))
        del sys.modules["count_words"]


def run(count_words: ModuleType, inputs: list[str]) -> list[tuple[object, int]]:
    job = Job().run(input=inputs, map=count_words.map, reduce=count_words.reduce)
    try:
        return list(result_iterator(job.wait()))
    finally:
        job.purge()


def test_as_the_readme_runs_it(cluster: Cluster, count_words: ModuleType, tmp_path: Path) -> None:
    script = tmp_path / "count_words.py"
    script.write_text(readme_script())
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=dict(os.environ),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = [tuple(line.split()) for line in done.stdout.splitlines() if re.fullmatch(r"\w+ \d+", line)]
    assert printed == [(word, str(count)) for word, count in COUNTS]


def test_tag_input(cluster: Cluster, count_words: ModuleType, tmp_path: Path) -> None:
    book = tmp_path / "book.txt"
    book.write_text(TEXT)
    DDFS(cluster.url).push("data:readme-books", [str(book)])
    try:
        assert run(count_words, ["tag://data:readme-books"]) == COUNTS
        # raw:// (str lines) and tag:// (bytes lines) in one job: one kind of key, summed together.
        doubled = run(count_words, ["raw://the quick brown fox", "tag://data:readme-books"])
        assert doubled == [("brown", 2), ("dog", 1), ("fox", 2), ("lazy", 1), ("quick", 2), ("the", 3)]
    finally:
        DDFS(cluster.url).delete("data:readme-books")


def test_raw_input(cluster: Cluster, count_words: ModuleType) -> None:
    assert run(count_words, ["raw://the quick brown fox", "raw://the lazy dog"]) == COUNTS


def test_file_input(cluster: Cluster, count_words: ModuleType, tmp_path: Path) -> None:
    book = tmp_path / "book.txt"  # the nodes run on this machine: the file is on every node
    book.write_text(TEXT)
    assert run(count_words, [f"file://{book}"]) == COUNTS


def test_http_input(cluster: Cluster, count_words: ModuleType) -> None:
    class Book(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = TEXT.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((cluster.master_host, 0), Book)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert run(count_words, [f"http://{cluster.master_host}:{server.server_port}/book.txt"]) == COUNTS
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
