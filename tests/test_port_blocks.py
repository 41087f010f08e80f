"""Port blocks never cover the ports Ray's client proxy picks from on its own (23000-23999):
a Ray worker port there could take the port the proxy has just found free for a client's
server, and that client's connection would fail."""

from __future__ import annotations

from pathlib import Path

from disco.framework_support.port_blocks import FIRST_PORT, port_block


def test_blocks_pass_over_ray_client_server_ports(tmp_path: Path) -> None:
    starts = [port_block(str(tmp_path), f"127.250.0.{k}", 64) for k in range(1, 80)]
    assert len(set(starts)) == len(starts)
    assert starts[0] >= FIRST_PORT
    assert any(start >= 24000 for start in starts), "the blocks did not reach past the reserved range"
    assert all(start + 64 <= 23000 or start >= 24000 for start in starts)
    assert port_block(str(tmp_path), "127.250.0.1", 64) == starts[0]  # the same block again
