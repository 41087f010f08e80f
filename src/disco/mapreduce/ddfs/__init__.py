"""DDFS, Disco's distributed file system: immutable blobs and versioned tags on the nodes,
the tag namespace and garbage collection on the master.

Server side modules: `names` (object names, timestamps, URLs), `tagdata` (a tag's content,
attributes, tokens, how urls merge), `config`, `errors`; on the master `service` (the entry
point), `tags` (per-tag serialized operations), `links` (requests to nodes, choice of nodes),
`gc` (garbage collection, re-replication), `routes` (the `/ddfs/*` HTTP API); on a node
`store` (DDFS_DATA), `node_app` (its HTTP services), `node_server` (the upload server).

Data flow
=========

A client asks the master for upload URLs (`GET /ddfs/new_blob/<name>`), PUTs the blob to
each node on its DDFS_PUT_PORT, then adds the URLs the nodes answered with to a tag
(`POST /ddfs/tag/<tag>`). Blobs are read straight from the nodes' data servers
(`disco://<host>/ddfs/...` is `http://<host>:DISCO_PORT/ddfs/...`, or a local file for a task
on that host). Tags are read and changed only through the master, which writes each tag
version to DDFS_TAG_REPLICAS nodes.

Master -> node requests
=======================

The master calls nodes at `http://<host>:<put_port>/ddfs/node/...` (documented in `node_app`):
write a tag version, read the newest version of a tag, list tag names, list everything held
(for GC), delete objects, copy a blob from another node. A node's `put_port` is the one it
announced when it registered (`disco.mapreduce.master`); nodes that announced none store no
DDFS data.
"""
