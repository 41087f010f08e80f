"""The master's small web page: nodes and jobs at `/`, one job's stages and events at
`/ui/job?name=`. Plain server-rendered HTML: no scripts, forms post to /ui/* and come back."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING
from urllib.parse import quote

from disco import __version__

if TYPE_CHECKING:
    from disco.mapreduce.master.coordinator import Job
    from disco.mapreduce.master.master import Master

_STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:90%}
th{background:#eee} .active{color:#06c} .ready{color:#080} .dead{color:#c00}
pre{margin:0;white-space:pre-wrap} form{display:inline}
"""


def _page(title: str, body: str, refresh: bool = True) -> str:
    meta = '<meta http-equiv="refresh" content="5">' if refresh else ""
    return (f"<!doctype html><html><head><meta charset='utf-8'>{meta}<title>{escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{body}"
            f"<p><small>DISCO map/reduce master {escape(__version__)}</small></p></body></html>")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def index_page(master: Master) -> str:
    nodes = [[escape(host), "yes" if n.connected else "no", "yes" if n.blacklisted else "no",
              str(n.slots), str(len(n.running)), str(n.job_ok), str(n.error + n.data_error)]
             for host, n in sorted(master.registry.nodes.items())]
    jobs = []
    for job in reversed(list(master.jobs.values())):
        link = f"<a href='/ui/job?name={quote(job.name)}'>{escape(job.name)}</a>"
        jobs.append([link, f"<span class='{job.status}'>{job.status}</span>",
                     escape(job.spec.owner), str(job.n_running)])
    node_headers = ["host", "connected", "blacklisted", "slots", "running", "tasks ok", "failures"]
    body = (f"<h1>Disco master</h1><h2>Nodes</h2>{_table(node_headers, nodes)}"
            f"<h2>Jobs</h2>{_table(['job', 'status', 'owner', 'running tasks'], jobs)}")
    return _page("Disco master", body)


def job_page(job: Job) -> str:
    stages = [[escape(str(cell)) for cell in row] for row in job.pipeline_counts()]
    events = [[escape(ts), escape(host), f"<pre>{escape(msg)}</pre>"]
              for ts, host, msg in job.events.last(300)]
    name = quote(job.name)
    actions = ""
    if job.active:
        actions += f"<form method='post' action='/ui/kill?name={name}'><button>Kill</button></form> "
    actions += f"<form method='post' action='/ui/purge?name={name}'><button>Purge</button></form>"
    results = "".join(f"<li>{escape(u)}</li>" for urls in job.results for u in urls)
    body = (f"<p><a href='/'>&larr; all jobs</a></p><h1>{escape(job.name)}</h1>"
            f"<p>Status: <span class='{job.status}'>{job.status}</span>; owner "
            f"{escape(job.spec.owner)}; worker {escape(job.spec.worker)}. {actions}</p>"
            f"<h2>Stages</h2>"
            f"{_table(['stage', 'pending', 'waiting', 'running', 'done', 'failed'], stages)}"
            + (f"<h2>Results</h2><ul>{results}</ul>" if results else "")
            + f"<h2>Events (newest first)</h2>{_table(['time', 'host', 'message'], events)}")
    return _page(job.name, body, refresh=job.active)
