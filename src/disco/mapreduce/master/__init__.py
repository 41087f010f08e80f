"""The Disco map/reduce master: job queue, job coordinators, the HTTP API, the web page.

Run it with `python -m disco.mapreduce.master --host H --port P --data DIR [--scheduler
fair|fifo]`. Modules: `app` (HTTP server, and why Starlette/uvicorn), `ctrl_routes` (Disco's
API), `node_routes` + `node_desk` (the node protocol below; the web page), `master` (state and
operations), `coordinator` (one job), `scheduler` + `queue` (who runs what where), `nodes`,
`grouping`, `pipeline` (jobdicts), `job_inputs`, `data`, `tasks`, `events`, `web`, `config`,
`jobnames`, `errors`, `journal` (what is kept on disk, group-committed fsyncs) and `resume`
(the jobs of the data folder back in memory at start-up).

On disk (`--data`): `jobs/<hh>/<jobname>/jobpack` (the submitted pack, served to nodes),
`jobs/<hh>/<jobname>/journal` (while the job runs: its task ends) or `final.json` (once it has
ended), `jobs/<hh>/<jobname>/events` (the job's event log, JSON lines), `config_table.json`
(the saved config table). A restarted master resumes every unfinished job (see `resume`);
nodes that poll it with their old session are told to register again.

Master <-> node protocol
========================

Nodes call the master; the master never calls a node except to read a `dir://` job input from
its data server. With a cluster token (`disco.mapreduce.auth`) every request either way
carries `Authorization: Bearer <token>`; a node refused with 401 at registration exits. All bodies are JSON objects; every request after registration carries the
node's `host` and `session`. A request with a session the master no longer knows (the node was
declared lost, or the master restarted) gets **410**: the node then kills all its workers and
registers again.

`POST /disco/node/register` `{host, slots, port, put_port}`
    -> `{session, poll_hold, node_timeout, master, purged: [jobname...]}`.
    `host` is the node's name in `disco://` URLs, `port` where it serves `/disco/<path>` and
    `/ddfs/<path>`, `put_port` (0 or absent: none) where it takes DDFS uploads and the
    master's DDFS requests (see `disco.mapreduce.ddfs`).
    Slots may be overridden by the config table (`save_config_table`). Registering again ends
    the previous session; its tasks are retried elsewhere. `purged` lists jobs purged while
    the node may have been away, whose folders it deletes.

`POST /disco/node/poll` `{seq, running: [[job, taskid, attempt]...], diskfree, diskused}`
    -> `{slots, tasks: [assignment...], kill_tasks: [[job, taskid, attempt]...],
    kill_jobs: [job...], purge_jobs: [job...]}`.
    The long-poll, and the heartbeat: the master holds it up to `poll_hold` seconds until
    there is something for the node. A node that has not polled for `node_timeout` seconds is
    lost: its running tasks fail and are retried on other nodes. `seq` increases with every
    poll; `running` lists the tasks the node holds and has not yet reported, and a task handed
    out in an earlier poll but missing from the list was lost on the way and is retried.
    An assignment is `{job, taskid, attempt, stage, grouping, group: [label, host or ""],
    worker, inputs: [[input_id, label, [[rep_id, url]...]]...], inputs_done, final}`;
    `inputs_done` is false for tasks of a concurrent stage whose inputs may still grow;
    `final` is true in the job's last stage, whose outputs are the results (only those are
    synced to disk; a node that misses the field syncs everything).
    `kill_*` stop workers without a report (the master has written those attempts off);
    `purge_jobs` also deletes the jobs' homes. `slots` is how many tasks the node may run
    at once; it may be handed more (tasks of a job whose tasks are short wait on the node,
    see `scheduler`), and runs them in the order given.

`POST /disco/node/results` `{results: [result...], events: [[job, message]...]}` -> `{ok}`.
    How tasks ended, several in one request, after the events that precede them. A result is
    `{job, taskid, attempt, status, message, outputs, failed_inputs, seconds}`: `status` is
    `done`, `error` (retry), `input_error` (retry after making the inputs listed in
    `failed_inputs: [[input_id, [host...]]...]` again) or `fatal` (the job dies with
    `message`). `outputs` (for `done`) are `{"dir": [host, "dir://...results", [[label,
    size]...]]}` for the task's local results index and `{"data": [label, size, [url...]]}`
    for remote outputs. `seconds` (optional) is how long the worker took, from its TASK to
    its last message: it tells the scheduler whether the job's tasks are short. Results for
    an attempt the master no longer counts are ignored.

`POST /disco/node/events` `{events: [[job, message]...]}` -> `{ok}`.
    Worker messages and warnings for the job event logs, batched; the master stamps the time
    and the node's host. Events for jobs that have ended are dropped.

`POST /disco/node/inputs` `{job, taskid, attempt, known}`
    -> `{status: "more"|"done"|"gone", inputs: [[input_id, label, [[rep_id, url]...]]...]}`.
    For tasks of concurrent stages: held until the task has inputs beyond the `known` first
    ones, or its input list is complete, or 15 s pass; `gone` means the attempt no longer
    counts.

`GET /disco/node/jobpack?name=JOB` -> the job pack, saved by the node as `<jobhome>/jobfile`.
"""
