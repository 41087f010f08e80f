"""tools/run_disco_suite.py: the Python 3 edits it makes to Disco's test files, and a run of
a small suite laid out as a Disco checkout is (a cluster per file of tests/, none for
lib/test/), with its counts read back from --json."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

TOOL = Path(__file__).resolve().parents[2] / "tools" / "run_disco_suite.py"
sys.path.insert(0, str(TOOL.parent))

from run_disco_suite import py3_edits, report, FileResult  # noqa: E402


def test_py3_edits() -> None:
    source = textwrap.dedent("""\
        print "GC did not finish: ", response
        if x:
            print >>f, "hello world!"
            print
            print a,
        print("already")
        printer = 1
        k = base64.encodestring(b) + base64.decodestring(k)
        first = self.results(b).next()[1]
        other = it.next()
        """)
    assert py3_edits(source) == textwrap.dedent("""\
        print("GC did not finish: ", response)
        if x:
            print("hello world!", file=f)
            print()
            print(a, end=" ")
        print("already")
        printer = 1
        k = base64.encodebytes(b) + base64.decodebytes(k)
        first = next(self.results(b))[1]
        other = next(it)
        """)
    for line in ("print('x')\n", "    print(a, b)\n", "printed = True\n"):
        assert py3_edits(line) == line


def test_report_tables() -> None:
    text = report([FileResult("tests/test_a.py", "classic", 3, 1, ["A.test_x"], [], [],
                              ["A.test_net"], 2.0),
                   FileResult("lib/test/test_b.py", "unit (lib/test)", 2, 1, [], [],
                              [["B.test_y", "why"]], [], 0.1)])
    assert "| tests/test_a.py    | classic         | 1      | 1      | 0      | 0       | 1" in text
    assert "| all             | 2     | 2      | 1      | 0      | 1       | 1       |" in text
    assert "- tests/test_a.py: not run (needs the internet) A.test_net" in text
    assert "- tests/test_a.py: failed A.test_x" in text
    assert "- lib/test/test_b.py: skipped B.test_y: why" in text


def test_runs_a_suite_laid_out_as_discos(tmp_path: Path) -> None:
    checkout = tmp_path / "disco"
    (checkout / "tests").mkdir(parents=True)
    (checkout / "lib" / "test").mkdir(parents=True)
    (checkout / "tests" / "test_words.py").write_text(textwrap.dedent("""\
        from disco.test import TestCase, TestJob

        def fun_map(line, params):
            print "mapping", line
            yield line.strip(), 1

        class WordsTestCase(TestCase):
            def serve(self, path):
                return path + "\\n"

            def test_map(self):
                self.job = TestJob().run(input=self.test_server.urls(["a", "b"]), map=fun_map)
                self.assertEquals(sorted(k for k, v in self.results(self.job)), [b"a", b"b"])

            def test_wrong(self):
                self.assertEquals(self.num_workers, 5)  # two nodes of two slots: fails
        """))
    (checkout / "lib" / "test" / "test_unit.py").write_text(textwrap.dedent("""\
        import unittest
        from disco.util import encode, decode

        class T(unittest.TestCase):
            def test_trans(self):
                self.assertEqual(decode(encode(b"\\x00\\x01")), b"\\x00\\x01")

            def test_skip(self):
                self.skipTest("not here")
        """))
    # Tests that would fetch from the internet are left out, never run.
    (checkout / "tests" / "test_examples.py").write_text("raise SystemExit('imported')\n")
    (checkout / "tests" / "test_ddfs.py").write_text(textwrap.dedent("""\
        from disco.test import TestCase

        class DDFSWriteTestCase(TestCase):
            def test_chunk(self):
                self.fail("ran")

            def test_list(self):
                self.assertEqual(self.ddfs.list("no-such-prefix"), [])
        """))
    out = tmp_path / "results.json"
    run = subprocess.run([sys.executable, str(TOOL), "--disco-src", str(checkout),
                          "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr  # one test failed
    results = {r["file"]: r for r in json.loads(out.read_text())}
    words = results["tests/test_words.py"]
    assert (words["run"], words["passed"], words["failed"]) == \
        (2, 1, ["WordsTestCase.test_wrong"]), run.stderr
    unit = results["lib/test/test_unit.py"]
    assert (unit["tier"], unit["run"], unit["passed"], unit["skipped"]) == \
        ("unit (lib/test)", 2, 1, [["T.test_skip", "not here"]])
    ddfs = results["tests/test_ddfs.py"]
    assert (ddfs["tier"], ddfs["run"], ddfs["passed"], ddfs["not_run"]) == \
        ("ddfs", 1, 1, ["DDFSWriteTestCase.test_chunk"]), run.stderr
    assert results["tests/test_examples.py"]["not_run"] == ["test_examples (the whole file)"]
    assert results["tests/test_examples.py"]["errors"] == []
    assert "| all " in run.stdout and "failed WordsTestCase.test_wrong" in run.stdout
