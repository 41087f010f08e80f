"""The pieces of several masters over one node pool that need no processes: slot shares,
job names per master, and the node's and master's command lines for it."""

from __future__ import annotations

import pytest

from disco.mapreduce.master.__main__ import parse_args as master_args
from disco.mapreduce.master.jobnames import instance_of, new_jobname
from disco.mapreduce.node.__main__ import parse_args as node_args
from disco.mapreduce.node.config import split_slots


def test_slots_split_evenly_remainder_first_at_least_one() -> None:
    assert split_slots(2, 2) == [1, 1]
    assert split_slots(5, 2) == [3, 2]
    assert split_slots(1, 3) == [1, 1, 1]
    assert split_slots(4, 2, [3, 1]) == [3, 1]


@pytest.mark.parametrize("shares, why", [([1], "2 masters"), ([0, 2], "at least 1"),
                                         ([3, 2], "more than the node's")])
def test_bad_shares_are_refused(shares: list[int], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        split_slots(4, 2, shares)


def test_masters_never_make_the_same_job_name() -> None:
    now = 1_700_000_000_123_456_000
    names = [new_jobname("J", set(), now_ns=now, index=i, count=3) for i in range(3)]
    assert len(set(names)) == 3
    assert [instance_of(n, 3) for n in names] == [0, 1, 2]
    taken = {names[1]}
    again = new_jobname("J", taken, now_ns=now, index=1, count=3)
    assert again != names[1] and instance_of(again, 3) == 1
    assert instance_of("not a job name", 2) is None


def test_node_takes_several_masters_with_shares() -> None:
    configs, _level, _listen = node_args(["--master", "http://a:1,http://b:2", "--host", "n",
                                          "--slots", "4", "--share", "3", "--share", "1"])
    assert [(c.master, c.slots, c.share) for c in configs] == [("http://a:1", 3, 3),
                                                               ("http://b:2", 1, 1)]
    [single], _level, _listen = node_args(["--master", "http://a:1", "--host", "n", "--slots", "2"])
    assert (single.slots, single.share) == (2, None)


@pytest.mark.parametrize("argv", [
    ["--master", "http://a:1", "--master", "http://a:1"],
    ["--master", "http://a:1", "--share", "1"],
    ["--master", "http://a:1,http://b:2", "--slots", "2", "--share", "2", "--share", "2"],
])
def test_node_refuses_bad_master_lists(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        node_args([*argv, "--host", "n"])
    assert stop.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_master_instance_and_authority() -> None:
    config, _level = master_args(["--instance", "1/2", "--ddfs-authority", "http://m:8989/"])
    assert (config.instance, config.instances, config.ddfs_authority) == (1, 2, "http://m:8989")
    for bad in (["--instance", "2/2"], ["--instance", "x"], ["--ddfs-authority", "m:8989"]):
        with pytest.raises(SystemExit):
            master_args(bad)
