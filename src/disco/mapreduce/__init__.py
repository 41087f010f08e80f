"""The Disco Map/Reduce runtime: a master (`disco.mapreduce.master`) and the node supervisor
(`disco.mapreduce.node`) that runs workers speaking Disco's worker protocol.

Both are runnable modules::

    python -m disco.mapreduce.master --host H --port P --data DIR [--scheduler fair|fifo]
    python -m disco.mapreduce.node --master http://H:P --host N --port P --data DIR [--slots S]

both with `[--token-file PATH]`: the cluster token every request must carry (`auth`).

The master <-> node protocol is documented in `disco.mapreduce.master` (it is ours, under
`/disco/node/`); everything a Disco client or worker sees is Disco's own format.
"""
