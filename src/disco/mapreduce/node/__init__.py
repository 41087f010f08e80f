"""The Disco map/reduce node supervisor.

Run it with `python -m disco.mapreduce.node --master http://H:P --host N --port P --data DIR
[--slots S]`. It serves DISCO_DATA at `http://N:P/disco/<path>` (`dataserver`), registers with
the master and long-polls it for tasks (`supervisor`, `client`; the protocol is documented in
`disco.mapreduce.master`), makes each job's home once (`jobhome`), and runs one worker per task,
speaking Disco's worker protocol 1.1 with it (`session`, `wire`, `inputs`, `outputs`,
`throttle`), with worker messages going to the job's events (`events`).
"""
