"""Unit tests of the OCCI text rendering (occi_format), the attribute mapping
(occi_attributes) and the safe inject parser: no service manager needed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from disco.cluster.api.occi_attributes import attributes_of, reject_control_characters, spec_from_attributes
from disco.cluster.api.occi_cloud import Credentials
from disco.cluster.models import Cluster, Node
from disco.cluster.spec import parse_spec, resolve
from disco.cluster.api.occi_format import (MAX_HEADER_CHARS, SM_SCHEME, Category, MalformedOcci,
                                           parse_attributes, parse_categories, parse_category,
                                           render_attribute)
from disco.errors import InvalidSpec, UnknownFramework
from disco.frameworks.catalog import Catalog, load_catalog
from disco.frameworks.inject import MAX_LENGTH, parse_inject

TEST_FRAMEWORKS = Path(__file__).parent / "frameworks"
SEED_CATEGORY = 'disco; scheme="http://schemas.cloudcomplab.ch/occi/sm#"; class="kind";'


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(TEST_FRAMEWORKS)


# -- X-OCCI-Attribute parsing --------------------------------------------------------------

def test_quoted_values_may_contain_commas_and_equals() -> None:
    header = 'a="x, y", b="k=v,w", c="{\'dask\': \'\', \'spark\': \'\'}"'
    assert parse_attributes([header]) == {"a": "x, y", "b": "k=v,w", "c": "{'dask': '', 'spark': ''}"}


def test_escapes_in_quoted_values() -> None:
    header = r'q="say \"hi\"", nl="one\ntwo", bs="C:\\data", other="keep \d"'
    assert parse_attributes([header]) == {
        "q": 'say "hi"', "nl": "one\ntwo", "bs": "C:\\data",
        # An unknown escape is kept as written rather than silently dropped.
        "other": "keep \\d",
    }


def test_repeated_headers_equal_one_comma_separated_header() -> None:
    repeated = ['icclab.disco.components.heat.slavecount="2"',
                'icclab.disco.dependencies.inject="{\'webecho\': \'\'}"',
                "icclab.disco.components.webecho.size=3"]
    assert parse_attributes(repeated) == parse_attributes([",".join(repeated)]) == \
        parse_attributes([", ".join(repeated)]) == {
            "icclab.disco.components.heat.slavecount": "2",
            "icclab.disco.dependencies.inject": "{'webecho': ''}",
            "icclab.disco.components.webecho.size": "3",
        }


def test_numbers_and_booleans_may_be_unquoted() -> None:
    assert parse_attributes(["n=3, f=2.5, neg=-1, e=1e3, yes=true"]) == {
        "n": "3", "f": "2.5", "neg": "-1", "e": "1e3", "yes": "true"}


def test_whitespace_around_attributes_is_allowed() -> None:
    assert parse_attributes([]) == {}
    assert parse_attributes(['  a = "1" ,\tb="2"  ']) == {"a": "1", "b": "2"}
    assert parse_attributes(['empty=""']) == {"empty": ""}


@pytest.mark.parametrize("headers", [
    [""], ["   "], [",,,,"], ["  ,  "], ['a="1",'], [',a="1"'], ['a="1",,b="2"'], ['a="1", ,b="2"'],
    ['a="1"', ""],
])
def test_empty_attributes_are_refused(headers: list[str]) -> None:
    with pytest.raises(MalformedOcci) as info:
        parse_attributes(headers)
    assert info.value.code == "empty_attribute"
    assert "empty attribute" in info.value.message


@pytest.mark.parametrize("char", ["\x00", "\x01", "\n", "\r", "\x1b", "\x7f"])
def test_raw_control_characters_in_headers_are_refused(char: str) -> None:
    with pytest.raises(MalformedOcci) as info:
        parse_attributes([f'a="x{char}y"'])
    assert info.value.code == "control_character"
    assert f"U+{ord(char):04X}" in info.value.message
    with pytest.raises(MalformedOcci) as info:
        parse_categories([f'disco; scheme="{SM_SCHEME}{char}"'])
    assert info.value.code == "control_character"


@pytest.mark.parametrize("escaped", ["\\u0000", "\\u001b", "\\u007f", "\\u0008"])
def test_escaped_control_characters_are_refused_as_input(escaped: str) -> None:
    # The format reads them back (render_attribute writes them so) ...
    attrs = parse_attributes([f'icclab.disco.name="a{escaped}b"'])
    assert attrs["icclab.disco.name"] == "a" + chr(int(escaped[2:], 16)) + "b"
    # ... but no cluster spec takes them.
    with pytest.raises(MalformedOcci) as info:
        reject_control_characters(attrs)
    assert info.value.code == "control_character"
    assert info.value.details == {"attribute": "icclab.disco.name"}


def test_tab_newline_and_return_are_text() -> None:
    attrs = parse_attributes(['v="one\\ttwo\\nthree\\r"'])
    reject_control_characters(attrs)
    assert attrs == {"v": "one\ttwo\nthree\r"}


@pytest.mark.parametrize("headers", [
    ['a="unterminated'],
    ['a="ends with a backslash\\'],
    ["no_equals_sign"],
    ['a="1", b'],
    ['a="1" b="2"'],              # missing comma
    ['="no name"'],
    ['a b="space in name"'],
    ['"a"="quoted name"'],
    ["a="],                        # no value
    ["greeting=hello"],            # strings must be quoted
    ['a=1"'],
    ['a="x"y'],
    ["%%%garbage%%%"],
    [";;;"],
    ['a="\\uZZZZ"'],               # bad unicode escape
    ['a="\\ud800"'],               # lone surrogate
    ['a="1"', 'a="2"'],            # the same attribute twice (across headers)
    ['a="1", a="1"'],              # ... or within one
    ['a="' + "x" * MAX_HEADER_CHARS + '"'],
])
def test_malformed_attributes_raise(headers: list[str]) -> None:
    with pytest.raises(MalformedOcci) as info:
        parse_attributes(headers)
    assert info.value.status == 400
    assert info.value.to_dict()["error"]["code"] == "malformed_occi"


# -- rendering ---------------------------------------------------------------------------------

def test_render_numbers_unquoted_strings_quoted() -> None:
    assert render_attribute("n", 3) == "n=3"
    assert render_attribute("f", 2.5) == "f=2.5"
    assert render_attribute("b", True) == 'b="true"'
    assert render_attribute("s", "x") == 's="x"'
    # A non-finite float is no OCCI number; it goes out as a string.
    assert render_attribute("inf", float("inf")) == 'inf="inf"'


def test_render_escapes_newlines_as_literal_backslash_n() -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"
    rendered = render_attribute("ssh_private_key", key)
    assert "\n" not in rendered
    assert rendered == 'ssh_private_key="-----BEGIN OPENSSH PRIVATE KEY-----\\nabc\\n' \
                       '-----END OPENSSH PRIVATE KEY-----\\n"'
    assert parse_attributes([rendered]) == {"ssh_private_key": key}


def test_render_is_header_safe_ascii() -> None:
    # Control and non-ASCII characters would make a text/occi response fail (headers are
    # one line of Latin-1); they are escaped and read back unchanged.
    value = 'a\rb\tc\x00d "é" → 😀 \\'
    rendered = render_attribute("v", value)
    assert all(0x20 <= ord(ch) < 0x7F for ch in rendered), rendered
    assert parse_attributes([rendered]) == {"v": value}


names = st.from_regex(r"[a-z_][a-z0-9_.]{0,30}", fullmatch=True)


@given(st.dictionaries(names, st.text(max_size=200), max_size=8))
def test_render_then_parse_round_trips(attrs: dict[str, str]) -> None:
    rendered = [render_attribute(k, v) for k, v in attrs.items()]
    assert all(0x20 <= ord(ch) < 0x7F for line in rendered for ch in line)
    assert parse_attributes(rendered) == attrs            # repeated headers
    # One comma-separated header (none at all for no attributes: an empty one is refused).
    assert parse_attributes([", ".join(rendered)] if rendered else []) == attrs


@given(st.dictionaries(names, st.integers(min_value=-10**12, max_value=10**12), max_size=5))
def test_numbers_round_trip_as_their_decimal_strings(attrs: dict[str, int]) -> None:
    header = ",".join(render_attribute(k, v) for k, v in attrs.items())
    assert parse_attributes([header] if header else []) == {k: str(v) for k, v in attrs.items()}


# -- Category ----------------------------------------------------------------------------------

def test_parse_seed_category_with_trailing_semicolon() -> None:
    category = parse_category(SEED_CATEGORY)
    assert (category.term, category.scheme, category.cls) == ("disco", SM_SCHEME, "kind")
    assert category.params == {}


def test_category_render_parse_round_trip() -> None:
    original = Category("disco", SM_SCHEME, "kind", {"title": "a; b", "location": "/disco/"})
    assert parse_category(original.render()) == original


@pytest.mark.parametrize("header", [
    "",
    ";;",
    'scheme="http://schemas.cloudcomplab.ch/occi/sm#"; class="kind"',   # no term
    'disco; scheme="http://schemas.cloudcomplab.ch/occi/sm#; class="kind"',  # unbalanced quote
    "disco; scheme",                                                         # parameter without value
])
def test_malformed_category_raises(header: str) -> None:
    with pytest.raises(MalformedOcci):
        parse_category(header)


@pytest.mark.parametrize("header", [
    'disco; scheme="a#"; scheme="b#"; class="kind"',
    'disco; scheme="a#"; class="kind"; class="mixin"',
    'disco; title="a"; title="b"',
])
def test_category_parameter_given_twice_is_refused(header: str) -> None:
    with pytest.raises(MalformedOcci) as info:
        parse_category(header)
    assert "given twice" in info.value.message


@pytest.mark.parametrize("term", ["dis co", "1disco", "disco!", "dísco"])
def test_category_term_must_be_an_occi_term(term: str) -> None:
    with pytest.raises(MalformedOcci) as info:
        parse_category(f'{term}; scheme="{SM_SCHEME}"; class="kind"')
    assert "term" in info.value.message


def test_categories_comma_joined_or_repeated() -> None:
    one = f'disco; scheme="{SM_SCHEME}"; class="kind"'
    other = 'extra; scheme="http://example.com/occi#"; class="mixin"; title="a, b"'
    joined = parse_categories([f"{one}, {other}"])
    assert [c.term for c in joined] == ["disco", "extra"]
    assert joined[1].params == {"title": "a, b"}   # a comma inside quotes separates nothing
    assert parse_categories([one, other]) == joined
    assert parse_categories([SEED_CATEGORY]) == [parse_category(SEED_CATEGORY)]
    assert parse_categories([]) == []


@pytest.mark.parametrize("headers", [[""], [","], [f'disco; scheme="{SM_SCHEME}",'],
                                     [f',disco; scheme="{SM_SCHEME}"']])
def test_empty_category_is_refused(headers: list[str]) -> None:
    with pytest.raises(MalformedOcci) as info:
        parse_categories(headers)
    assert info.value.code == "empty_category"


# -- inject ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("{'spark': ''}", {"spark": ""}),
    ("{}", {}),
    ('  {"dask": "", "spark": "default"}  ', {"dask": "", "spark": "default"}),
])
def test_inject_accepts_dict_of_strings(value: str, expected: dict[str, str]) -> None:
    assert parse_inject(value) == expected


@pytest.mark.parametrize("value", [
    "__import__('os').system('id')",
    "{'spark': __import__('os').system('id')}",
    "{__import__('os').getcwd(): ''}",
    "['spark']",                       # list
    "{'spark'}",                       # set (the pre-2017 format)
    "('spark',)",
    "{'spark': {'version': '3'}}",     # nested dict
    "{'spark': 1}",                    # number value
    "{1: ''}",                         # number key
    "{'spark': None}",
    "{'spark': b''}",                  # bytes are not str
    "f'{1}'",
    "{'spark': f'{1}'}",
    "{**{'spark': ''}}",
    "lambda: 0",
    "{'spark': (lambda: '')()}",
    "{'a': ''} | {'b': ''}",
    "'a' * 10**9",
    "{'spark': ''}; import os",
    "",
    "{",
    "None",
    "spark",
    "{'spark': '" + "x" * MAX_LENGTH + "'}",  # very long
])
def test_inject_rejects_everything_else(value: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_inject(value)
    assert info.value.code == "invalid_inject"


@pytest.mark.parametrize("prefix", ["-", "+", "~", "not ", "(", "[", "{", "{'a': ", "lambda: ", "await ",
                                    "*", "{'a': -", "x.", "x[", "f(", "'a' if "])
def test_inject_fails_cleanly_at_any_depth(prefix: str) -> None:
    # Deep nesting once made the syntax-tree parser raise RecursionError (a 500). Every depth
    # up to the length limit is now an ordinary 422, and fast.
    for depth in (1, 10, 100, 1000, 2969, (MAX_LENGTH - 1) // len(prefix)):
        value = (prefix * depth + "1")[:MAX_LENGTH]
        started = time.perf_counter()
        with pytest.raises(InvalidSpec) as info:
            parse_inject(value)
        assert info.value.code == "invalid_inject"
        assert time.perf_counter() - started < 0.5, (prefix, depth)


def test_inject_duplicate_key_is_refused() -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_inject("{'spark': '', 'dask': '', 'spark': 'x'}")
    assert info.value.code == "invalid_inject"
    assert info.value.details == {"key": "spark"}
    assert "twice" in info.value.message
    with pytest.raises(InvalidSpec):   # the same key, spelt two ways
        parse_inject("{'spark': '', \"sp\\x61rk\": ''}")


@pytest.mark.parametrize("value", ["{'spark\\x00': ''}", "{'spark': '\\x1b[31m'}", "{'a\\u007f': ''}",
                                   "{'spark': '\x00'}"])
def test_inject_control_characters_are_refused(value: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_inject(value)
    assert info.value.code == "invalid_inject"


@pytest.mark.parametrize(("value", "expected"), [
    ("{'spark': '',}", {"spark": ""}),                         # a trailing comma, as Python allows
    ("{\n  'spark': '',\n  'dask': ''\n}", {"spark": "", "dask": ""}),  # over several lines
    ("{r'spark': u'x'}", {"spark": "x"}),                      # raw and u'' strings are plain str
    ('{"""spark""": \'\'}', {"spark": ""}),
    ("{'sp\\x61rk': ''}", {"spark": ""}),                      # escapes are decoded
])
def test_inject_accepts_python_spellings_of_a_dict(value: str, expected: dict[str, str]) -> None:
    assert parse_inject(value) == expected


@pytest.mark.parametrize("value", [
    "{'a': ''} # a comment", "{'a' 'b': ''}", "{'a': '' ''}", "{,}", "{'a': '',,}", "{'a': ''}}",
    "{'a': ''} {'b': ''}", "{'a': '\\N{NO SUCH NAME}'}", "{'a': '''x}", "{'a': ''",
])
def test_inject_refuses_near_misses(value: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_inject(value)
    assert info.value.code == "invalid_inject"


@given(st.text(max_size=300) | st.text(alphabet="{}[]()'\":,-~ a\\\n", max_size=MAX_LENGTH))
def test_inject_answers_any_text_with_a_dict_or_invalid_inject(value: str) -> None:
    try:
        result = parse_inject(value)
    except InvalidSpec as exc:
        assert exc.code == "invalid_inject"
    else:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in result.items())


def test_inject_payload_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for payload in (f"__import__('pathlib').Path({str(marker)!r}).touch()",
                    f"{{'spark': __import__('pathlib').Path({str(marker)!r}).touch()}}",
                    f"{{'spark': ''}} if __import__('pathlib').Path({str(marker)!r}).touch() else {{}}"):
        with pytest.raises(InvalidSpec):
            parse_inject(payload)
    assert not marker.exists()


# -- spec_from_attributes ----------------------------------------------------------------------

SEED = {
    "icclab.disco.components.heat.networkname": "disconetwork-1a2b3c4d",
    "icclab.disco.components.heat.externalnetworkname": "public",
    "icclab.disco.components.heat.masterimage": "ubuntu-14.04",
    "icclab.disco.components.heat.slaveimage": "ubuntu-14.04-slave",
    "icclab.disco.components.heat.masterflavor": "m1.large",
    "icclab.disco.components.heat.slaveflavor": "m1.medium",
    "icclab.disco.components.heat.slavecount": "2",
    "icclab.disco.deployer.username": "alice",
    "icclab.disco.deployer.password": "hunter2-not-in-spec",
    "icclab.disco.deployer.region": "RegionOne",
    "icclab.disco.dependencies.inject": "{'webecho': ''}",
    "icclab.disco.components.webecho.greeting": "hi",
}
BOX = {"auth_type": "admin_token", "auth": {"endpoint": "http://127.0.0.1:9/v1/p", "token": "box-token-1"}}


def test_seed_attributes_make_an_openstack_spec(catalog: Catalog) -> None:
    asked: list[Credentials] = []
    spec = spec_from_attributes(SEED, catalog, cloud=lambda c: asked.append(c) or BOX)
    assert spec.provider == "openstack" and spec.workers == 2
    assert [(fw.name, fw.properties) for fw in spec.frameworks] == [("webecho", {"greeting": "hi"})]
    # networkname names the network the original made: DISCO makes (and names) its own.
    assert spec.provider_options == {"master_image": "ubuntu-14.04", "worker_image": "ubuntu-14.04-slave",
                                     "master_flavor": "m1.large", "worker_flavor": "m1.medium",
                                     "external_network": "public"}
    assert asked == [Credentials("alice", "hunter2-not-in-spec", "RegionOne")]
    assert spec.cloud == BOX
    # The password reaches the (write-only, sealed) cloud alone: not the shown spec, not a repr.
    assert "hunter2" not in json.dumps(spec.provider_options) and "hunter2" not in repr(asked)


def test_headers_alone_make_an_openstack_spec(catalog: Catalog) -> None:
    asked: list[Credentials] = []
    spec = spec_from_attributes({"icclab.disco.dependencies.inject": "{'webecho': ''}"}, catalog,
                                headers=Credentials("bob", "pw", None), cloud=lambda c: asked.append(c) or BOX)
    assert spec.provider == "openstack" and spec.provider_options == {}
    assert asked == [Credentials("bob", "pw", None)]


def test_without_openstack_inputs_the_default_provider_stays(catalog: Catalog) -> None:
    def no_cloud(_: Credentials) -> dict[str, Any]:
        raise AssertionError("no cloud for a local cluster")
    spec = spec_from_attributes({"icclab.disco.components.heat.slavecount": "3"}, catalog, cloud=no_cloud)
    assert spec.provider is None and spec.workers == 3 and spec.cloud is None
    # An explicit other provider: the README's X-User-* headers are ignored (never kept).
    spec = spec_from_attributes({"icclab.disco.provider": "local"}, catalog, headers=Credentials("a", "b", "c"),
                                cloud=no_cloud)
    assert spec.provider == "local" and spec.cloud is None and spec.provider_options == {}


@pytest.mark.parametrize("attrs", [
    {"icclab.disco.provider": "local", "icclab.disco.components.heat.masterimage": "x"},
    {"icclab.disco.provider": "ssh", "icclab.disco.deployer.password": "secret-pw"},
    {"icclab.disco.components.heat.masterimage": "x", "icclab.disco.deployer.auth_url": "http://127.0.0.1:1/"},
    {"icclab.disco.deployer.username": "a", "icclab.disco.deployer.type": "FileDeployer"},
])
def test_openstack_attributes_where_they_do_not_belong(catalog: Catalog, attrs: dict[str, str]) -> None:
    with pytest.raises(InvalidSpec) as info:
        spec_from_attributes(attrs, catalog, cloud=lambda _: BOX)
    assert info.value.code == "openstack_attribute" and info.value.status == 422
    assert "secret-pw" not in str(info.value.to_dict())


def test_implicit_components_are_harmless(catalog: Catalog) -> None:
    spec = spec_from_attributes(
        {"icclab.disco.dependencies.inject": "{'heat': '', 'shell': '', 'webecho': ''}"}, catalog)
    assert [fw.name for fw in spec.frameworks] == ["webecho"]


@pytest.mark.parametrize(("attrs", "code"), [
    ({"icclab.disco.dependencies.inject": "__import__('os').system('id')"}, "invalid_inject"),
    ({"icclab.disco.dependencies.inject": "{'webecho'}"}, "invalid_inject"),
    ({"icclab.disco.bogus": "1"}, "unknown_attribute"),
    ({"foo.bar": "1"}, "unknown_attribute"),
    ({"action": "suspend"}, "unknown_attribute"),
    ({"icclab.disco.components.heat.colour": "red"}, "unknown_attribute"),
    ({"icclab.disco.deployer.shoe_size": "42"}, "unknown_attribute"),
    ({"icclab.disco.components.webecho": "x"}, "unknown_attribute"),
    ({"icclab.disco.components.webecho.a.b": "x"}, "unknown_attribute"),
    ({"icclab.disco.components.nosuchfw.x": "1"}, "unknown_framework"),
    ({"icclab.disco.components.heat.slavecount": "2.5"}, "invalid_attribute"),
    ({"icclab.disco.components.heat.slavecount": "abc"}, "invalid_attribute"),
    ({"icclab.disco.components.heat.slavecount": "true"}, "invalid_attribute"),
    ({"icclab.disco.components.heat.slavecount": "1_0"}, "invalid_attribute"),   # int() would say 10
    ({"icclab.disco.components.heat.slavecount": "\u0663"}, "invalid_attribute"),  # Arabic-Indic 3
    ({"icclab.disco.components.heat.slavecount": "9" * 40}, "invalid_attribute"),
    ({"icclab.disco.components.heat.slavecount": "-1"}, "invalid_spec"),
    ({"icclab.disco.idle_timeout": "soon"}, "invalid_attribute"),
])
def test_bad_attributes_raise_invalid_spec(catalog: Catalog, attrs: dict[str, str], code: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        spec_from_attributes(attrs, catalog)
    assert info.value.code == code
    assert info.value.status == 422


def test_unknown_component_is_unknown_framework(catalog: Catalog) -> None:
    with pytest.raises(UnknownFramework):
        spec_from_attributes({"icclab.disco.components.storm.parallelism": "3"}, catalog)


def test_unsafe_inject_through_attributes_is_not_executed(catalog: Catalog, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    attrs = {"icclab.disco.dependencies.inject": f"__import__('pathlib').Path({str(marker)!r}).touch()"}
    with pytest.raises(InvalidSpec):
        spec_from_attributes(attrs, catalog)
    assert not marker.exists()


def test_a_property_left_unset_has_no_attribute(catalog: Catalog) -> None:
    resolved = resolve(parse_spec({"frameworks": [{"name": "hadoop", "properties": {"nodemanager_vcores": 2}}]}),
                       catalog, max_workers=4)
    cluster = Cluster(id="c0ffee00-0000-4000-8000-000000000000", tenant="t", name="h", provider="local",
                      spec=resolved.public_dict(), state="ready", target="running", workers=1, outputs={})
    cluster.nodes = [Node(name="master", role="master", index=0, host="127.0.100.1", target="running")]
    attrs = attributes_of(cluster, "", "http://127.0.0.1:8888")
    assert attrs["icclab.disco.components.hadoop.nodemanager_vcores"] == 2
    assert attrs["icclab.disco.components.hadoop.min_allocation_mb"] == 512
    assert "icclab.disco.components.hadoop.replication" not in attrs  # unset: derived from the workers


# -- an OpenStack cluster's attributes --------------------------------------------------------------

def openstack_cluster(catalog: Catalog, state: str, outputs: dict[str, Any]) -> Cluster:
    options = {"master_image": "debian-12", "worker_image": "debian-12w", "master_flavor": "m1.small",
               "worker_flavor": "m1.tiny", "external_network": "public", "cidr": "10.9.0.0/24"}
    resolved = resolve(parse_spec({"frameworks": ["webecho"], "provider_options": options}), catalog, max_workers=4)
    cluster = Cluster(id="c0ffee00-0000-4000-8000-000000000001", tenant="t", name="os", provider="openstack",
                      spec=resolved.public_dict(), state=state, target="running", workers=2, outputs=outputs,
                      ssh_public_key="ssh-ed25519 AAAAcluster")
    cluster.nodes = [Node(name="master", role="master", index=0, host="10.9.0.5", target="running")]
    return cluster


@pytest.mark.parametrize(("state", "status"), [
    ("pending", "CREATE_IN_PROGRESS"), ("provisioning", "CREATE_IN_PROGRESS"), ("installing", "CREATE_IN_PROGRESS"),
    ("ready", "CREATE_COMPLETE"), ("failed", "CREATE_FAILED"), ("suspended", "SUSPEND_COMPLETE"),
    ("deleting", "DELETE_IN_PROGRESS"), ("deleted", "DELETE_COMPLETE"),
])
def test_stack_status_follows_the_cluster_state(catalog: Catalog, state: str, status: str) -> None:
    attrs = attributes_of(openstack_cluster(catalog, state, {}), "", "http://127.0.0.1:8888")
    assert attrs["stack_status"] == status
    assert attrs["mcn.service.state"] == state


def test_ready_openstack_cluster_shows_the_stack_outputs(catalog: Catalog) -> None:
    outputs = {"stack_id": "5f0e-stack", "stack_name": "disco-os-c0ffee00", "stack_status": "UPDATE_COMPLETE",
               "external_ip": "203.0.113.7", "ssh_key_name": "disco-os-c0ffee00-key",
               "ssh_public_key": "ssh-ed25519 AAAAstack"}
    attrs = attributes_of(openstack_cluster(catalog, "ready", outputs), "PRIVATE", "http://127.0.0.1:8888")
    assert {k: attrs[k] for k in ("stackid", "stack_name", "stack_status", "external_ip", "ssh_key_name",
                                  "ssh_public_key", "ssh_private_key")} == {
        "stackid": "5f0e-stack", "stack_name": "disco-os-c0ffee00", "stack_status": "UPDATE_COMPLETE",
        "external_ip": "203.0.113.7", "ssh_key_name": "disco-os-c0ffee00-key",
        "ssh_public_key": "ssh-ed25519 AAAAstack", "ssh_private_key": "PRIVATE"}
    # The provider's options come back under the seed's names.
    heat = "icclab.disco.components.heat."
    assert {k: v for k, v in attrs.items() if k.startswith(heat)} == {
        heat + "masterimage": "debian-12", heat + "slaveimage": "debian-12w", heat + "masterflavor": "m1.small",
        heat + "slaveflavor": "m1.tiny", heat + "externalnetworkname": "public", heat + "cidr": "10.9.0.0/24",
        heat + "slavecount": 2}
    assert attrs["icclab.disco.provider"] == "openstack"


def test_before_ready_the_cluster_own_key_and_master_address(catalog: Catalog) -> None:
    attrs = attributes_of(openstack_cluster(catalog, "installing", {}), "", "http://127.0.0.1:8888")
    assert attrs["external_ip"] == "10.9.0.5"
    assert attrs["ssh_public_key"] == "ssh-ed25519 AAAAcluster"
    assert "stack_name" not in attrs
