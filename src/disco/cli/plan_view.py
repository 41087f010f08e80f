"""`disco cluster plan` for people: a plan (POST /api/v1/clusters?dry_run=true) as Rich text.
Everything from the service manager is shown as Text, never read as markup."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

ORIGIN_STYLES = {"default": "dim", "derived": "cyan", "user": "green", "override": "magenta"}


def show_plan(out: Console, plan: dict[str, Any]) -> None:
    out.print(Text.assemble(("Plan", "bold"), f" — provider {plan['provider']}, 1 master, {plan['workers']} "
                            f"worker(s), frameworks {', '.join(plan['frameworks']) or 'none'}. ",
                            ("Nothing was created.", "bold")))
    if plan.get("cloud"):  # describe_cloud(): where and as whom, never a secret
        out.print(Text("Cloud: " + ", ".join(f"{key} {value}" for key, value in plan["cloud"].items())))
    _properties(out, plan)
    _nodes(out, plan)
    for node in plan["nodes"]:
        _node_detail(out, node)
    _ports(out, plan)
    _checks_and_outputs(out, plan)
    out.print(Text("\nSteps of a create", style="bold"))
    for number, step in enumerate(plan["steps"], 1):
        out.print(Text.assemble(f"{number:>3}. ", (step["step"], "cyan"), f"  {step['what']}"))
    out.print(Text(f"\nCredentials: {plan['credentials']}", style="dim"))
    if plan.get("template") is not None:
        out.print(Text("The provider's template is in `--output json` under `template`.", style="dim"))
    for problem in plan["problems"]:
        out.print(Text(f"problem ({problem['code']}) at {problem['where']}: {problem['message']}", style="yellow"))


def _properties(out: Console, plan: dict[str, Any]) -> None:
    table = Table(title="Properties", title_justify="left", box=None)
    for column in ("property", "value", "origin"):
        table.add_column(column)
    for framework, props in plan["properties"].items():
        for name, entry in props.items():
            table.add_row(Text(f"{framework}.{name}"), Text(_text(entry["value"])),
                          Text(entry["origin"], style=ORIGIN_STYLES.get(entry["origin"], "")))
    if table.row_count:
        out.print(table)


def _nodes(out: Console, plan: dict[str, Any]) -> None:
    table = Table(title="Nodes", title_justify="left", box=None)
    for column in ("node", "role", "host", "size", "notes"):
        table.add_column(column)
    for node in plan["nodes"]:
        size = node["size"]
        table.add_row(Text(node["name"]), Text(node["role"]), Text(node["host"] or "at create"),
                      Text(f"{size['memory_mb']} MiB, {size['cpus']} CPU" if size else "when it exists"),
                      Text("; ".join(node["notes"])))
    out.print(table)


def _node_detail(out: Console, node: dict[str, Any]) -> None:
    out.print(Text(f"\n{node['name']} ({node['host'] or 'host at create'}) — {node['workdir']}", style="bold"))
    for process in node["processes"]:
        waits = f"  (after {process['wait_for_tcp']} answers)" if process.get("wait_for_tcp") else ""
        out.print(Text.assemble("  process ", (process["name"], "cyan"), f": {' '.join(process['command'])}{waits}"))
        for key, value in process["env"].items():
            out.print(Text(f"      {key}={value}", style="dim"))
    for framework, files in node["files"].items():
        for path, entry in files.items():
            keys = entry.get("keys")
            if keys is None:
                out.print(Text(f"  file {path} ({framework}, {len(entry['text'])} characters)"))
                continue
            counts = {origin: sum(1 for k in keys.values() if k["origin"] == origin) for origin in ORIGIN_STYLES}
            out.print(Text(f"  file {path} ({framework}): " + ", ".join(f"{n} {o}" for o, n in counts.items() if n)))
            for key, value in keys.items():
                if value["origin"] != "default":
                    out.print(Text.assemble(f"      {key} = {_text(value['value'])}  ",
                                            (value["origin"], ORIGIN_STYLES[value["origin"]])))
    bootstrap = node["provider"].get("bootstrap")
    if bootstrap:
        bundle = bootstrap["bundle"]
        out.print(Text(f"  bootstrap: {len(bootstrap['script'].splitlines())}-line script and bundle "
                       f"(os packages: {', '.join(bundle['os_packages']) or 'none'}; python: "
                       f"{', '.join(bundle['python']['requirements']) or 'none'}) uploaded to "
                       f"{node['provider'].get('node_dir')}; in full with --output json"))


def _ports(out: Console, plan: dict[str, Any]) -> None:
    table = Table(title="\nPorts", title_justify="left", box=None)
    for column in ("node", "framework", "port", "name", "reachable from"):
        table.add_column(column)
    for node in plan["nodes"]:
        for port in node["ports"]:
            table.add_row(Text(node["name"]), Text(port["framework"]), Text(str(port["port"])), Text(port["name"]),
                          Text(", ".join(port["reachable_from"]) or "(see below)"))
    if table.row_count:
        out.print(table)
    out.print(Text(f"  {plan['access']['note']}", style="dim"))


def _checks_and_outputs(out: Console, plan: dict[str, Any]) -> None:
    out.print(Text("\nReadiness", style="bold"))
    for check in plan["readiness"]:
        what = ", ".join((check.get("urls") or {}).values()) or " ".join(check.get("command") or []) or "none"
        out.print(Text(f"  {check['framework']}: {check['kind']} {what}"
                       + (f" until {check['ready_when']}" if check.get("ready_when") else "")
                       + f" (at most {check['timeout_s']:g} s)"))
    outputs = plan["outputs"]
    if outputs.get("frameworks"):
        out.print(Text("\nOutputs", style="bold"))
        for framework, entries in outputs["frameworks"].items():
            for key, value in entries.items():
                for label, link in (value.items() if isinstance(value, dict) else [(key, value)]):
                    out.print(Text(f"  {framework} {label}: {link}"))


def _text(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
