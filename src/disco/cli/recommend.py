"""`disco recommend`: the framework questionnaire as options, the service manager's
recommendation printed with its reasons and alternatives, and `--create` to make it."""

from __future__ import annotations

from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from disco.cli import options
from disco.cli.client import ApiError
from disco.cli.options import TOKEN, URL
from disco.cli.output import Output, fail, print_json
from disco.recommend.rules import builtin_rules

out = Console()
_Q = builtin_rules().questions  # the help names the choices the packaged rules offer


def _help(qid: str, extra: str = "") -> str:
    choices = f" Choices: {', '.join(_Q[qid].values)}." if _Q[qid].choices and _Q[qid].type != "size" else ""
    value = _Q[qid].default
    default = f" Default: {', '.join(value) if isinstance(value, list) else value}." if value is not None else ""
    return f"{_Q[qid].text}{extra}{choices}{default}"


def recommend(
    work: list[str] = typer.Option(..., "--work", help=_help("work", " (repeatable; at least one)")),
    data_size: Optional[str] = typer.Option(None, "--data-size", help=_help("data_size", " E.g. 500MB, 50GB, 2TB.")),
    language: Optional[str] = typer.Option(None, "--language", help=_help("language")),
    latency: Optional[str] = typer.Option(None, "--latency", help=_help("latency")),
    max_nodes: Optional[int] = typer.Option(None, "--max-nodes", help=_help("max_nodes", " (the master included)")),
    provider: list[str] = typer.Option([], "--provider", help=_help("providers", " (repeatable)")),
    create: bool = typer.Option(False, "--create", help="Create the recommended cluster; its id is the last line."),
    output: Output = typer.Option(Output.table, "--output", "-o", help="table for people, json for scripts."),
    url: Optional[str] = URL,
    token: Optional[str] = TOKEN,
) -> None:
    """Recommend frameworks and a cluster size for your work, with reasons and alternatives."""
    answers: dict[str, Any] = {"work": work}
    given = {"data_size": data_size, "language": language, "latency": latency, "max_nodes": max_nodes,
             "providers": provider or None}
    answers.update({key: value for key, value in given.items() if value is not None})
    client = options.client(url, token)
    try:
        rec = client.request("POST", "/api/v1/recommendations", json=answers)
        cluster = _create(client, rec) if create else None
    except ApiError as exc:
        fail(exc, output)
    if output is Output.json:
        print_json({"recommendation": rec, "cluster": cluster} if create else rec)
        return
    show(rec, str(client.http.base_url).rstrip("/"))
    if cluster is not None:
        out.print(Text(f"created cluster {cluster['name']} ({cluster['state']}); "
                       f"follow it with: disco cluster show {cluster['id']}"))
        print(cluster["id"])


def _create(client: Any, rec: dict[str, Any]) -> dict[str, Any]:
    if rec["needs"]:
        wanted = "; ".join(need["message"] for need in rec["needs"])
        raise ApiError(422, rec["needs"][0]["code"], f"the recommended cluster cannot be created as it is: it needs "
                       f"{wanted}. Use `disco cluster create` with the recommended frameworks and these.",
                       {"needs": rec["needs"], "spec": rec["spec"]})
    created: dict[str, Any] = client.request("POST", "/api/v1/clusters", json=rec["spec"])
    return created


def show(rec: dict[str, Any], base_url: str) -> None:
    """The recommendation for people; every text from the service is shown as written (Text)."""
    chosen = [fw for fw in rec["frameworks"] if fw["role"] == "chosen"]
    deps = [fw for fw in rec["frameworks"] if fw["role"] == "dependency"]
    head = Text("Recommended: ", style="bold")
    head.append(", ".join(fw["label"] for fw in chosen) or "no framework")
    head.append(f" on {rec['provider']}, {rec['workers']} worker{'s' if rec['workers'] != 1 else ''} + 1 master")
    out.print(head)
    table = Table("framework", "why", show_lines=True)
    for fw in chosen + deps:
        name = fw["name"] if fw["role"] == "chosen" else f"{fw['name']} (dependency)"
        table.add_row(Text(name), Text("\n".join(fw["reasons"])))
    table.add_row(Text(f"{rec['workers']} workers"), Text("\n".join(rec["workers_reasons"])))
    table.add_row(Text(f"provider {rec['provider']}"), Text("\n".join(rec["provider_reasons"])))
    out.print(table)
    if rec["alternatives"]:
        alt = Table("alternative", "instead of", "why not", title="Alternatives")
        for a in rec["alternatives"]:
            where = f"{a['instead_of']} ({a['for_work']})" if a["for_work"] else a["instead_of"]
            alt.add_row(Text(a["name"]), Text(where), Text(a["why_not"]))
        out.print(alt)
    for warning in rec["warnings"]:
        out.print(Text(f"warning: {warning}", style="yellow"))
    for need in rec["needs"]:
        out.print(Text(f"still needed ({need['code']}): {need['message']}", style="yellow"))
    when = " (with what is still needed)" if rec["needs"] else ""
    out.print(Text(f"create it{when}: disco cluster create --provider {rec['provider']} --workers {rec['workers']} "
                   + " ".join(f"-f {fw['name']}" for fw in chosen)))
    out.print(Text(f"or in the dashboard: {base_url}{rec['form_url']}"))
