"""The recommendation rules (frameworks/recommendations.yaml) and the engine, without a service
manager: the real rules file and the real catalogue, one test per kind of work and per rule
that changes the answer (language, providers, size, latency), and a broken rules file refused
at load with the bad key named."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from disco.frameworks.catalog import BUILTIN_DIR, load_catalog
from disco.errors import InvalidSpec
from disco.recommend.engine import Blocker, Context, recommend
from disco.recommend.questions import parse_answers, questionnaire, size_gb
from disco.recommend.rules import RULES_FILE, RulesError, builtin_rules, parse_rules

CATALOG = load_catalog()
RULES = builtin_rules()


def rec(max_workers: int = 64, blocked: dict[str, Blocker] | None = None, free_hosts: int | None = None,
        catalog: Any = CATALOG, **answers: Any) -> dict[str, Any]:
    result = recommend(parse_answers(answers), RULES, Context(catalog, max_workers, blocked or {}, free_hosts))
    return result.model_dump(mode="json", exclude_unset=True)


def chosen(result: dict[str, Any]) -> list[str]:
    return [fw["name"] for fw in result["frameworks"] if fw["role"] == "chosen"]


def alternatives(result: dict[str, Any], kind: str = "framework") -> dict[str, str]:
    return {a["name"]: a["why_not"] for a in result["alternatives"] if a["kind"] == kind}


# -- each kind of work -------------------------------------------------------------------------------

def test_sql_and_etl_get_spark_with_java_as_its_dependency() -> None:
    result = rec(work=["sql-etl"])
    assert chosen(result) == ["spark"]
    java = next(fw for fw in result["frameworks"] if fw["name"] == "java")
    assert java["role"] == "dependency" and java["required_by"] == ["spark"]
    assert "Spark SQL" in result["frameworks"][0]["reasons"][0]
    lost = alternatives(result)
    assert set(lost) == {"dask", "hadoop", "mapreduce"}
    assert "no SQL engine" in lost["dask"]
    assert "does not run Python code" in lost["hadoop"]  # language, said as such
    assert result["spec"] == {"provider": "local", "workers": 1, "frameworks": [{"name": "spark"}]}


def test_arrays_and_ml_get_dask_and_ray_is_the_alternative_for_training() -> None:
    result = rec(work=["arrays-ml"])
    assert chosen(result) == ["dask"]
    assert "NumPy" in result["frameworks"][0]["reasons"][0]
    assert "training many models" in alternatives(result)["ray"]


def test_python_map_reduce_gets_disco_map_reduce() -> None:
    result = rec(work=["mapreduce"])
    assert chosen(result) == ["mapreduce"]
    assert "Disco jobs would have to be rewritten" in alternatives(result)["spark"]


def test_streaming_gets_spark_and_says_what_disco_does_not_offer() -> None:
    result = rec(work=["streaming"])
    assert chosen(result) == ["spark"]
    assert any("no message broker" in w and "Flink" in w and "not milliseconds" in w for w in result["warnings"])
    assert "no streaming engine" in alternatives(result)["dask"]


def test_notebooks_alone_get_jupyter_and_an_engine_to_compute_on() -> None:
    result = rec(work=["notebooks"])
    assert chosen(result) == ["jupyter", "dask"]
    dask = next(fw for fw in result["frameworks"] if fw["name"] == "dask")
    assert dask["for_work"] == ["notebooks"] and "needs a cluster to compute on" in dask["reasons"][0]
    # With an engine already chosen for other work, none is added.
    assert chosen(rec(work=["notebooks", "sql-etl"])) == ["spark", "jupyter"]


def test_distributed_tasks_get_ray() -> None:
    result = rec(work=["tasks"])
    assert chosen(result) == ["ray"]
    assert "actors" in alternatives(result)["dask"]


def test_several_kinds_of_work_share_a_framework_and_list_every_reason() -> None:
    result = rec(work=["streaming", "sql-etl"])
    assert chosen(result) == ["spark"]
    spark = result["frameworks"][0]
    assert spark["for_work"] == ["sql-etl", "streaming"] and len(spark["reasons"]) == 2
    # The answer's order does not matter; repeated choices count once.
    assert rec(work=["sql-etl", "streaming", "sql-etl"]) | {"answers": None} == result | {"answers": None}


# -- language, providers, size, latency -------------------------------------------------------------

def test_java_or_scala_leads_to_spark_for_every_kind_of_work() -> None:
    for kind in ("sql-etl", "arrays-ml", "tasks", "streaming"):
        assert chosen(rec(work=[kind], language="jvm")) == ["spark"], kind
    result = rec(work=["tasks"], language="jvm")
    assert "does not run Java or Scala code" in alternatives(result)["ray"]


def test_java_map_reduce_gets_spark_and_hadoop_loses_for_its_own_reason() -> None:
    on_hosts = rec(work=["mapreduce"], language="jvm", providers=["ssh"])
    assert chosen(on_hosts) == ["spark"] and on_hosts["provider"] == "ssh"
    assert "Java classes" in alternatives(on_hosts)["hadoop"]
    assert "does not run Java or Scala code" in alternatives(on_hosts)["mapreduce"]
    here = rec(work=["mapreduce"], language="jvm", providers=["local"])
    assert chosen(here) == ["spark"]
    assert "SSH hosts or cloud servers" in alternatives(here)["hadoop"]


def test_java_notebooks_get_zeppelin_on_hosts_and_a_warning_here() -> None:
    on_hosts = rec(work=["notebooks"], language="jvm", providers=["ssh", "local"])
    assert chosen(on_hosts) == ["zeppelin"]  # Zeppelin brings Spark: no engine added
    deps = {fw["name"]: fw["required_by"] for fw in on_hosts["frameworks"] if fw["role"] == "dependency"}
    assert deps == {"spark": ["zeppelin"], "java": ["zeppelin"]}
    assert on_hosts["provider"] == "ssh"
    assert "Zeppelin" in alternatives(on_hosts, "provider")["local"]
    here = rec(work=["notebooks"], language="jvm", providers=["local"])
    assert chosen(here) == ["jupyter", "spark"]
    assert any("no framework here runs Java or Scala code" in w for w in here["warnings"])


def test_workers_follow_the_data_size_and_the_latency() -> None:
    assert rec(work=["arrays-ml"], data_size="500MB")["workers"] == 1
    batch = rec(work=["arrays-ml"], data_size="200GB", latency="batch", max_nodes=20, providers=["ssh"])
    interactive = rec(work=["arrays-ml"], data_size="200GB", latency="interactive", max_nodes=20, providers=["ssh"])
    assert (batch["workers"], interactive["workers"]) == (4, 13)  # ceil(200/64), ceil(200/16)
    assert "64 GB per worker" in batch["workers_reasons"][0]


def test_workers_are_capped_by_the_nodes_you_can_afford_with_a_warning() -> None:
    result = rec(work=["sql-etl"], data_size="2TB", max_nodes=5, providers=["ssh"])
    assert result["workers"] == 4
    assert "capped at 4 by the 5 nodes you can afford" in result["workers_reasons"][1]
    assert any("32 workers would fit the data" in w for w in result["warnings"])


def test_workers_are_capped_by_the_local_provider_and_the_service_limit() -> None:
    local = rec(work=["sql-etl"], data_size="1TB", max_nodes=30, providers=["local"])
    assert local["workers"] == 4 and local["provider"] == "local"
    assert "capped at 4 on this machine: the local provider's nodes share" in local["workers_reasons"][-1]
    assert any("data of this size wants machines of their own" in w for w in local["warnings"])
    limited = rec(max_workers=2, work=["sql-etl"], data_size="1TB", max_nodes=30, providers=["ssh"])
    assert limited["workers"] == 2 and "DISCO_MAX_WORKERS" in limited["workers_reasons"][-1]


def test_small_data_prefers_this_machine_large_data_machines_of_their_own() -> None:
    small = rec(work=["tasks"], data_size="5GB", providers=["openstack", "ssh", "local"])
    assert small["provider"] == "local"
    assert set(alternatives(small, "provider")) == {"ssh", "openstack"}
    large = rec(work=["tasks"], data_size="5TB", max_nodes=9, providers=["openstack", "local", "ssh"])
    assert large["provider"] == "ssh" and large["workers"] == 8


def test_only_providers_the_user_has_are_recommended() -> None:
    for providers in (["local"], ["ssh"], ["openstack"], ["ssh", "openstack"]):
        result = rec(work=["arrays-ml"], data_size="5TB", providers=providers)
        assert result["provider"] in providers
        assert {a["name"] for a in result["alternatives"] if a["kind"] == "provider"} <= set(providers)


def test_openstack_lists_what_a_create_still_needs() -> None:
    result = rec(work=["arrays-ml"], providers=["openstack"])
    assert [n["code"] for n in result["needs"]] == ["cloud_missing", "invalid_provider_option"]
    assert rec(work=["arrays-ml"], providers=["local"])["needs"] == []


def test_an_ssh_pool_too_small_is_passed_over_or_said() -> None:
    passed = rec(free_hosts=0, work=["tasks"], data_size="5TB", providers=["ssh", "local"])
    assert passed["provider"] == "local" and passed["needs"] == []
    assert "0 free host(s)" in alternatives(passed, "provider")["ssh"]
    only = rec(free_hosts=1, work=["tasks"], data_size="1TB", max_nodes=10, providers=["ssh"])
    assert only["provider"] == "ssh" and only["needs"][0]["code"] == "no_free_hosts"
    assert only["workers"] == 9  # sized for the data: the hosts to add are what `needs` says
    capped = rec(free_hosts=3, work=["tasks"], data_size="5TB", max_nodes=10, providers=["ssh"])
    assert capped["workers"] == 2 and capped["needs"] == []
    assert "capped at 2 on machines over SSH: the SSH host pool has 3 free host(s) now" in capped["workers_reasons"]
    roomy = rec(free_hosts=3, work=["tasks"], data_size="5TB", max_nodes=10, providers=["ssh", "openstack"])
    assert roomy["provider"] == "openstack" and roomy["workers"] == 9
    assert alternatives(roomy, "provider")["ssh"] == "too small for 9 workers: the SSH host pool has 3 free host(s) now"
    # When none has room for all, the one with the most.
    most = rec(free_hosts=3, work=["tasks"], data_size="5TB", max_nodes=10, providers=["ssh", "local"])
    assert most["provider"] == "local" and most["workers"] == 4


def test_a_provider_this_tenant_cannot_use_is_passed_over() -> None:
    blocked = {"local": Blocker("isolation_unavailable", "provider local serves tenant 'default' only")}
    result = rec(blocked=blocked, free_hosts=5, work=["tasks"], providers=["local", "ssh"])
    assert result["provider"] == "ssh"
    assert alternatives(result, "provider")["local"] == "provider local serves tenant 'default' only"


def test_latency_notes_for_batch_only_frameworks() -> None:
    result = rec(work=["mapreduce"], latency="interactive")
    assert any("Map/Reduce jobs are batch jobs" in w for w in result["warnings"])
    assert not rec(work=["mapreduce"], latency="batch")["warnings"]


def test_the_form_url_carries_provider_workers_and_each_chosen_framework() -> None:
    result = rec(work=["notebooks", "tasks"], providers=["local"])
    url = urlsplit(result["form_url"])
    assert url.path == "/ui/clusters/new"
    assert parse_qs(url.query) == {"provider": ["local"], "workers": ["1"], "frameworks": ["jupyter", "ray", "dask"]}
    assert [f["name"] for f in result["spec"]["frameworks"]] == ["jupyter", "ray", "dask"]


def test_a_framework_missing_from_the_catalogue_is_never_recommended(tmp_path: Path) -> None:
    # A catalogue whose `dask` is replaced does not matter here; one without `ray` does:
    # an extra folder cannot remove a framework, so the catalogue is built from the others.
    catalog = load_catalog()
    catalog.frameworks.pop("ray")
    result = rec(catalog=catalog, work=["tasks"])
    assert chosen(result) == ["dask"]
    assert "not in this service manager's catalogue" in alternatives(result)["ray"]


# -- answers and the questionnaire -----------------------------------------------------------------

@pytest.mark.parametrize(("text", "gb"), [("500MB", 500 / 1024), ("50GB", 50), ("2TB", 2048), ("1.5 gb", 1.5)])
def test_data_sizes(text: str, gb: float) -> None:
    assert size_gb(text) == pytest.approx(gb)


@pytest.mark.parametrize(("answers", "where"), [
    ({}, "work"),
    ({"work": []}, "work"),
    ({"work": ["sql"]}, "work.0"),
    ({"work": ["tasks"], "language": "cobol"}, "language"),
    ({"work": ["tasks"], "max_nodes": 1}, "max_nodes"),
    ({"work": ["tasks"], "max_nodes": "4"}, "max_nodes"),
    ({"work": ["tasks"], "data_size": "50"}, "data_size"),
    ({"work": ["tasks"], "data_size": "9999999TB"}, "data_size"),
    ({"work": ["tasks"], "providers": ["aws"]}, "providers.0"),
    ({"work": ["tasks"], "colour": "blue"}, "colour"),
    ([], ""),
])
def test_bad_answers_are_refused_naming_the_field(answers: Any, where: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        parse_answers(answers)
    assert caught.value.code == "invalid_answers"
    assert where in [".".join(str(p) for p in issue["loc"]) for issue in caught.value.details]


def test_the_questionnaire_comes_from_the_rules_file() -> None:
    questions = {q["id"]: q for q in questionnaire(RULES)["questions"]}
    assert list(questions) == ["data_size", "work", "language", "latency", "max_nodes", "providers"]
    assert [c["value"] for c in questions["work"]["choices"]] == [
        "sql-etl", "arrays-ml", "mapreduce", "streaming", "notebooks", "tasks"]
    assert questions["work"]["required"] and not questions["language"]["required"]
    assert (questions["max_nodes"]["min"], questions["max_nodes"]["max"], questions["max_nodes"]["default"]) == (2, 65, 4)


# -- the rules file ---------------------------------------------------------------------------------

def test_the_catalogue_does_not_take_the_rules_file_for_a_framework() -> None:
    assert RULES_FILE.parent == BUILTIN_DIR
    assert "recommendations" not in CATALOG
    # Every framework the rules name is a builtin one (extra folders may add more).
    named = {c.framework for rule in RULES.work.values() for c in rule.candidates} | set(RULES.frameworks)
    assert named <= set(CATALOG.frameworks)


@pytest.mark.parametrize(("change", "message"), [
    (("work:\n  sql-etl:\n    candidates:\n      - framework: spark", "work:\n  sql-etl:\n    candidates:\n      - framework: sparky"),
     "work.sql-etl.candidates.0.framework: 'sparky' is not described under frameworks"),
    (("  latency:\n    text:", "  latency:\n    txt:"), "questions.latency.txt"),
    (("    default: 4\n", "    default: 99\n"), "max_nodes"),
    (("  ray: {label: Ray, languages: [python]}", "  ray: {label: Ray, languages: [cobol]}"),
     "frameworks.ray.languages: cobol"),
    (("    gb_per_worker: 16", "    gb_per_worker: -1"), "sizing.interactive.gb_per_worker"),
    (("  jupyter: {label: JupyterLab, languages: [python, sql]}",
      "  jupyter: {label: JupyterLab, languages: [python, sql], providers: [ssh]}"),
     "work.notebooks.candidates: none runs on every provider"),
])
def test_a_broken_rules_file_is_refused_naming_the_key(change: tuple[str, str], message: str) -> None:
    text = RULES_FILE.read_text()
    assert change[0] in text
    with pytest.raises(RulesError) as caught:
        parse_rules(text.replace(change[0], change[1], 1))
    assert message in str(caught.value)
