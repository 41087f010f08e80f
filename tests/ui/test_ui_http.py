"""The dashboard over plain HTTP, as a browser without JavaScript uses it, against a real
service manager: sign in and out, CSRF on every form, the create form's checks (the API's, next
to the field, nothing created), a Dask cluster created, scaled and deleted through the forms,
tenants kept apart, live streams, the host pool, and the token never echoed anywhere."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dashboard_client import Dashboard, field_error, unlabelled
from sm_fixtures import ServiceManager, free_port, wait_state, wait_until

SESSION_COOKIE = "disco_session"


@pytest.fixture(scope="module")
def tokens(sm: ServiceManager) -> dict[str, str]:
    store = sm.store()
    try:
        return {"a": store.create_token("tenant-a"), "b": store.create_token("tenant-b"),
                "admin": store.create_token("ops", admin=True)}
    finally:
        store.close()


@pytest.fixture(scope="module")
def pages_seen() -> list[httpx.Response]:
    return []


@pytest.fixture()
def ui(sm: ServiceManager, tokens: dict[str, str], pages_seen: list[httpx.Response]) -> Iterator[Dashboard]:
    """Tenant A, signed in."""
    dash = Dashboard(sm.url)
    assert dash.sign_in(tokens["a"]).status_code == 303
    yield dash
    pages_seen.extend(dash.seen)
    dash.close()


@pytest.fixture()
def api_a(sm: ServiceManager, tokens: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sm.url, headers={"X-Auth-Token": tokens["a"]}, timeout=30, trust_env=False) as c:
        yield c


def cluster_count(api: httpx.Client) -> int:
    return len(api.get("/api/v1/clusters", params={"include_deleted": "true"}).json())


def webecho(api: httpx.Client) -> str:
    created = api.post("/api/v1/clusters", json={"frameworks": ["webecho"], "workers": 1})
    assert created.status_code == 201, created.text
    wait_state(api, created.json()["id"], {"ready"}, timeout=60)
    return created.json()["id"]


def test_sign_in_refuses_a_bad_token_and_sets_no_session(sm: ServiceManager,
                                                         pages_seen: list[httpx.Response]) -> None:
    dash = Dashboard(sm.url)
    try:
        assert dash.get("/ui/clusters").headers["location"].startswith("/ui/signin")  # not signed in
        page = dash.get("/ui/signin")
        assert re.search(r'<label for="token">Token</label>', page.text)
        answer = dash.post("/ui/signin", {"token": "not-a-token"})
        assert answer.status_code == 401 and "This token is not valid." in answer.text
        assert "not-a-token" not in answer.text  # never echoed, the field is not filled in again
        assert SESSION_COOKIE not in dash.http.cookies
        assert dash.get("/ui/clusters").headers["location"].startswith("/ui/signin")
        # The sign-in form has its own CSRF value (a cookie and a field that must agree).
        dash.get("/ui/signin")
        assert dash.post("/ui/signin", {"token": "x"}, csrf=False).status_code == 403
    finally:
        pages_seen.extend(dash.seen)
        dash.close()


def test_sign_in_then_out(sm: ServiceManager, tokens: dict[str, str], pages_seen: list[httpx.Response]) -> None:
    dash = Dashboard(sm.url)
    try:
        answer = dash.sign_in(tokens["a"])
        assert answer.status_code == 303 and answer.headers["location"] == "/ui/clusters"
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/ui" in cookie
        page = dash.get("/ui/clusters")
        assert page.status_code == 200 and "tenant-a" in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        sid = dash.http.cookies[SESSION_COOKIE]
        assert dash.post("/ui/signout").status_code == 303
        assert dash.get("/ui/clusters").headers["location"].startswith("/ui/signin")
        # The old cookie is worth nothing now: the session ended server-side.
        with httpx.Client(base_url=sm.url, cookies={SESSION_COOKIE: sid}, trust_env=False) as replay:
            assert replay.get("/ui/clusters").headers["location"].startswith("/ui/signin")
    finally:
        pages_seen.extend(dash.seen)
        dash.close()


def test_every_post_without_csrf_is_refused(sm: ServiceManager, ui: Dashboard, api_a: httpx.Client,
                                            tokens: dict[str, str], pages_seen: list[httpx.Response]) -> None:
    cluster_id = webecho(api_a)
    before = cluster_count(api_a)
    posts = [("/ui/clusters/new", {"frameworks": "webecho", "workers": "1", "do": "create"}),
             (f"/ui/clusters/{cluster_id}/scale", {"workers": "2"}),
             (f"/ui/clusters/{cluster_id}/suspend", {}),
             (f"/ui/clusters/{cluster_id}/delete", {"confirm": "yes"}),
             ("/ui/signout", {})]
    for path, data in posts:
        for bad in (None, "wrong"):
            fields = dict(data, **({"csrf_token": bad} if bad else {}))
            answer = ui.post(path, fields, csrf=False)
            assert answer.status_code == 403, (path, answer.text[:300])
            assert "csrf_failed" in answer.text
    assert cluster_count(api_a) == before
    cluster = api_a.get(f"/api/v1/clusters/{cluster_id}").json()
    assert cluster["state"] == "ready" and cluster["workers"] == 1 and cluster["target"] == "running"
    assert ui.get("/ui/clusters").status_code == 200  # still signed in

    admin = Dashboard(sm.url)
    try:
        admin.sign_in(tokens["admin"])
        added = admin.post("/ui/hosts", {"address": "127.0.0.1", "user": "root", "private_key": "k"}, csrf=False)
        assert added.status_code == 403
        assert admin.post("/ui/hosts/1/remove", {}, csrf=False).status_code == 403
        assert "No hosts in the pool." in admin.get("/ui/hosts").text
    finally:
        pages_seen.extend(admin.seen)
        admin.close()


def test_bad_fields_come_back_next_to_the_field_and_nothing_is_created(ui: Dashboard,
                                                                       api_a: httpx.Client) -> None:
    before = cluster_count(api_a)
    page = ui.post("/ui/clusters/new", {"name": "keep-me", "workers": "-1", "frameworks": "dask", "do": "create"})
    assert page.status_code == 422
    api = api_a.post("/api/v1/clusters", json={"workers": -1, "frameworks": ["dask"]}).json()["error"]
    assert field_error(page.text, "workers") == api["details"][0]["msg"]  # the API's own words
    assert 'value="keep-me"' in page.text and 'id="error-summary"' in page.text  # the form as it was

    page = ui.post("/ui/clusters/new", {"workers": "1", "frameworks": "dask", "prop.dask.worker_threads": "999",
                                        "do": "create"})
    assert page.status_code == 422
    api = api_a.post("/api/v1/clusters", json={"workers": 1, "frameworks": [
        {"name": "dask", "properties": {"worker_threads": "999"}}]}).json()["error"]
    assert field_error(page.text, "prop-dask-worker_threads") == api["message"]
    assert 'min="1" max="256"' in page.text  # the bounds, from the framework's model

    page = ui.post("/ui/clusters/new", {"workers": "1", "frameworks": "webecho", "prop.webecho.size": "x",
                                        "prop.webecho.secret_word": "sesame", "do": "plan"})
    assert page.status_code == 422 and "must be of type int" in field_error(page.text, "prop-webecho-size")
    assert "sesame" not in page.text  # a secret property is not shown back
    page = ui.post("/ui/clusters/new", {"workers": "1", "frameworks": "webecho", "overrides": "[unclosed",
                                        "do": "create"})
    assert page.status_code == 422 and "not valid YAML" in field_error(page.text, "overrides")
    page = ui.post("/ui/clusters/new", {"workers": "1", "frameworks": "webecho", "prop.dask.worker_threads": "2",
                                        "do": "create"})  # set, but dask is not chosen: not dropped unseen
    assert page.status_code == 422 and "dask is not chosen" in field_error(page.text, "prop-dask-worker_threads")
    page = ui.post("/ui/clusters/new", {"workers": "99999", "frameworks": "webecho", "do": "create"})
    assert page.status_code == 422 and "configured maximum" in field_error(page.text, "workers")
    assert cluster_count(api_a) == before


def test_a_dependency_takes_properties_and_overrides(ui: Dashboard, api_a: httpx.Client) -> None:
    """Spark installs Java; Zeppelin installs Spark: their settings count with the framework
    that brings them (and the plan shows them as the user's)."""
    before = cluster_count(api_a)
    page = ui.post("/ui/clusters/new", {"workers": "1", "frameworks": "zeppelin", "prop.spark.worker_cores": "2",
                                        "do": "plan"})
    assert page.status_code == 200, page.text[:3000]
    assert "<code>worker_cores=2</code> (yours)" in page.text
    page = ui.post("/ui/clusters/new", {"workers": "1", "frameworks": "zeppelin", "prop.spark.worker_cores": "0",
                                        "do": "plan"})
    api = api_a.post("/api/v1/clusters?dry_run=true", json={"workers": 1, "frameworks": [
        "zeppelin", {"name": "spark", "properties": {"worker_cores": "0"}}]}).json()["error"]
    assert page.status_code == 422 and field_error(page.text, "prop-spark-worker_cores") == api["message"]
    assert cluster_count(api_a) == before


def test_the_form_takes_its_values_from_the_query_string(ui: Dashboard) -> None:
    page = ui.get("/ui/clusters/new?provider=local&workers=2&frameworks=dask&frameworks=jupyter").text
    for name in ("dask", "jupyter"):
        assert re.search(rf'id="fw-{name}" name="frameworks" value="{name}"\s+checked', page)
    assert not re.search(r'id="fw-spark" name="frameworks" value="spark"\s+checked', page)
    assert re.search(r'id="workers"[^>]*value="2"', page, re.S)
    assert '<option value="local" selected>' in page


def test_a_link_into_the_form_survives_signing_in(sm: ServiceManager, tokens: dict[str, str],
                                                  pages_seen: list[httpx.Response]) -> None:
    """The recommendation engine's link, followed by a browser not signed in yet, lands on the
    filled-in form after signing in; `next` leads nowhere but a dashboard page."""
    link = "/ui/clusters/new?provider=local&workers=2&frameworks=dask&frameworks=jupyter"
    dash = Dashboard(sm.url)
    try:
        to_sign_in = dash.get(link).headers["location"]
        assert to_sign_in.startswith("/ui/signin?next=")
        page = dash.get(to_sign_in)
        assert 'name="next" value="/ui/clusters/new?provider=local&amp;workers=2&amp;frameworks=dask' in page.text
        signed_in = dash.post("/ui/signin", {"token": tokens["a"], "next": link})
        assert signed_in.headers["location"] == link
        assert re.search(r'id="fw-jupyter" name="frameworks" value="jupyter"\s+checked', dash.get(link).text)
        assert dash.post("/ui/signout").status_code == 303
        for elsewhere in ("https://example.org/", "//example.org/ui/", "/api/v1/clusters", "/ui/\\example.org"):
            dash.get("/ui/signin")
            assert dash.post("/ui/signin", {"token": tokens["a"], "next": elsewhere}).headers["location"] == \
                "/ui/clusters"
            dash.get("/ui/clusters")  # the session's CSRF value
            assert dash.post("/ui/signout").status_code == 303
    finally:
        pages_seen.extend(dash.seen)
        dash.close()


def test_a_recommendation_opens_the_form_filled_in(ui: Dashboard, api_a: httpx.Client) -> None:
    """The recommendation engine's `form_url` (POST /api/v1/recommendations) is this form with
    its choices made, and planning it from there works."""
    answer = api_a.post("/api/v1/recommendations", json={"work": ["notebooks", "arrays-ml"],
                                                        "providers": ["local"], "max_nodes": 3})
    assert answer.status_code == 200, answer.text
    recommended = answer.json()
    page = ui.get(recommended["form_url"])
    assert page.status_code == 200
    chosen = [f["name"] for f in recommended["frameworks"] if f["role"] == "chosen"]
    assert chosen and sorted(re.findall(r'name="frameworks" value="([a-z0-9_-]+)"\s+checked', page.text)) == \
        sorted(chosen)
    assert re.search(rf'id="workers"[^>]*value="{recommended["workers"]}"', page.text, re.S)
    planned = ui.post("/ui/clusters/new", [("workers", str(recommended["workers"])), ("provider", "local"),
                                          ("do", "plan"), *[("frameworks", name) for name in chosen]])
    assert planned.status_code == 200 and 'id="plan"' in planned.text


def test_plan_shows_what_would_be_made_and_makes_nothing(ui: Dashboard, api_a: httpx.Client) -> None:
    before = cluster_count(api_a)
    page = ui.post("/ui/clusters/new", {"workers": "2", "frameworks": "webecho", "do": "plan"})
    assert page.status_code == 200 and 'id="plan"' in page.text
    assert "worker-2 (worker)" in page.text and "webecho/web" in page.text and "http 8000" in page.text
    assert cluster_count(api_a) == before


@pytest.mark.slow
def test_dask_cluster_through_the_forms(ui: Dashboard, api_a: httpx.Client) -> None:
    created = ui.post("/ui/clusters/new", {"name": "ui-dask", "workers": "1", "frameworks": "dask",
                                           "prop.dask.worker_threads": "2", "do": "create"})
    assert created.status_code == 303, created.text[:2000]
    cluster_id = created.headers["location"].rsplit("/", 1)[1]
    cluster = wait_state(api_a, cluster_id, {"ready", "failed"}, timeout=120)
    assert cluster["state"] == "ready", cluster["status_reason"]
    assert cluster["spec"]["frameworks"][0]["properties"] == {"worker_threads": "2"}
    page = ui.get(f"/ui/clusters/{cluster_id}").text
    assert cluster["outputs"]["frameworks"]["dask"]["scheduler_address"] in page
    assert "/reach/dask/dashboard" in page and "cluster ready" in page
    assert f'dask_client("{cluster_id[:8]}")' in page  # how to connect, for this cluster
    reach = ui.get(f"/ui/live/clusters/{cluster_id}/reach/dask/dashboard").json()
    assert reach == {"up": True, "status": 401}  # up, and asking for the cluster's token

    key = ui.get(f"/ui/clusters/{cluster_id}/ssh-key")
    assert key.text == api_a.get(f"/api/v1/clusters/{cluster_id}/ssh-key").text
    assert key.headers["content-disposition"].startswith("attachment;")

    assert ui.post(f"/ui/clusters/{cluster_id}/scale", {"workers": "2"}).status_code == 303
    wait_until(lambda: (c := api_a.get(f"/api/v1/clusters/{cluster_id}").json())["state"] == "ready"
               and len(c["nodes"]) == 3, timeout=90, what="scaled to 2 workers")
    refused = ui.post(f"/ui/clusters/{cluster_id}/scale", {"workers": "-3"})
    assert refused.status_code == 422 and "between 0 and" in field_error(refused.text, "workers")

    # Delete: the button leads to a confirmation page; only its form deletes.
    assert ui.post(f"/ui/clusters/{cluster_id}/delete", {}).headers["location"].endswith("/delete")
    assert api_a.get(f"/api/v1/clusters/{cluster_id}").json()["target"] == "running"
    confirm = ui.get(f"/ui/clusters/{cluster_id}/delete")
    assert 'name="confirm" value="yes"' in confirm.text
    assert ui.post(f"/ui/clusters/{cluster_id}/delete", {"confirm": "yes"}).status_code == 303
    wait_state(api_a, cluster_id, {"deleted"}, timeout=60)


def test_streams_deliver_state_changes_and_logs(ui: Dashboard, api_a: httpx.Client) -> None:
    made: list[str] = []

    def create() -> None:
        answer = api_a.post("/api/v1/clusters", json={"frameworks": ["webecho"], "workers": 1})
        made.append(answer.json()["id"])

    events = ui.events("/ui/live/clusters", lambda name, rows: name == "clusters" and any(
        r["id"] in made and r["state"] == "ready" for r in rows), timeout=60, between=create)
    states = [r["state"] for _, rows in events for r in rows if r["id"] in made]
    assert states[-1] == "ready" and len(states) >= 2  # seen before ready, then ready

    cluster_id = made[0]
    seen = ui.events(f"/ui/live/clusters/{cluster_id}", lambda name, data: name == "state", timeout=30)
    assert seen[-1] == ("state", {"state": "ready", "target": "running", "workers": 1, "status_reason": "",
                                  "state_class": "ok", "nodes": 2})
    assert [data["step"] for name, data in seen if name == "cluster-event"][-1] == "ready"  # the log first
    page = ui.get(f"/ui/clusters/{cluster_id}/logs/master/webecho-web")
    assert page.status_code == 200
    offset = re.search(r'\?offset=(\d+)"', page.text)
    assert offset is not None
    log = ui.events(f"/ui/live/clusters/{cluster_id}/logs/master/webecho-web?offset=0",
                    lambda name, data: name == "log", timeout=30)
    assert log[-1][1]["offset"] > 0 and log[-1][1]["text"]
    # A reconnecting EventSource says where it left off (Last-Event-ID): nothing comes twice.
    last = max(data["id"] for name, data in seen if name == "cluster-event")
    resumed = ui.events(f"/ui/live/clusters/{cluster_id}?after=0", lambda name, data: name == "state",
                        timeout=30, headers={"Last-Event-ID": str(last)})
    assert [name for name, _ in resumed] == ["state"]
    assert ui.get(f"/ui/live/clusters/{cluster_id}/reach/webecho/web").json() == {"up": True, "status": 200}


def test_another_tenants_cluster_is_not_found(sm: ServiceManager, api_a: httpx.Client, tokens: dict[str, str],
                                              pages_seen: list[httpx.Response]) -> None:
    cluster_id = webecho(api_a)
    other = Dashboard(sm.url)
    try:
        other.sign_in(tokens["b"])
        for path in (f"/ui/clusters/{cluster_id}", f"/ui/clusters/{cluster_id}/ssh-key",
                     f"/ui/clusters/{cluster_id}/delete", f"/ui/clusters/{cluster_id}/logs/master/webecho-web",
                     f"/ui/live/clusters/{cluster_id}", f"/ui/live/clusters/{cluster_id}/logs/master/webecho-web",
                     f"/ui/live/clusters/{cluster_id}/reach/webecho/web"):
            answer = other.get(path)
            assert answer.status_code == 404, path
            assert "BEGIN OPENSSH" not in answer.text
        for action in ("scale", "suspend", "delete"):
            assert other.post(f"/ui/clusters/{cluster_id}/{action}", {"workers": "3", "confirm": "yes"}).status_code == 404
        assert cluster_id not in other.get("/ui/clusters").text
        cluster = api_a.get(f"/api/v1/clusters/{cluster_id}").json()
        assert cluster["target"] == "running" and cluster["workers"] == 1
    finally:
        pages_seen.extend(other.seen)
        other.close()


def test_the_host_pool_is_for_admins(sm: ServiceManager, ui: Dashboard, tokens: dict[str, str],
                                     pages_seen: list[httpx.Response]) -> None:
    assert ui.get("/ui/hosts").status_code == 403
    assert "/ui/hosts" not in ui.get("/ui/clusters").text  # not in a tenant's menu
    key = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                     serialization.NoEncryption()).decode()
    admin = Dashboard(sm.url)
    try:
        admin.sign_in(tokens["admin"])
        assert admin.get("/ui/hosts").status_code == 200
        bad = admin.post("/ui/hosts", {"address": "127.0.0.1", "port": "0", "user": "root", "private_key": key})
        assert bad.status_code == 422 and "greater than or equal to 1" in field_error(bad.text, "port")
        assert "OPENSSH PRIVATE KEY" not in bad.text  # the key is not shown back
        port = free_port()  # nothing listens there: the host is added, then found unreachable
        added = admin.post("/ui/hosts", {"address": "127.0.0.1", "port": str(port), "user": "root",
                                         "private_key": key, "name": "nowhere"})
        assert added.status_code == 303
        page = admin.get("/ui/hosts").text
        assert "nowhere" in page and "unreachable" in page
        host_id = re.search(r'action="/ui/hosts/(\d+)/check"', page).group(1)
        assert admin.post(f"/ui/hosts/{host_id}/check", {}).status_code == 303
        assert admin.post(f"/ui/hosts/{host_id}/remove", {}).status_code == 303
        assert "No hosts in the pool." in admin.get("/ui/hosts").text
    finally:
        pages_seen.extend(admin.seen)
        admin.close()


def test_frameworks_catalogue(ui: Dashboard) -> None:
    page = ui.get("/ui/frameworks").text
    assert 'id="fw-dask"' in page and "worker_threads" in page and "1 to 256" in page
    assert 'href="/ui/clusters/new?frameworks=spark"' in page and "Depends on: java" in page


def test_no_ui_route_in_the_openapi_schema(sm: ServiceManager) -> None:
    paths = httpx.get(f"{sm.url}/openapi.json", trust_env=False).json()["paths"]
    assert not [p for p in paths if p.startswith("/ui")]


def test_sign_in_is_throttled_like_the_api(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Guessing tokens in the form counts as guessing them at the API: after the limit, even
    the right token is not looked at (429, Retry-After) and no session is made."""
    manager = ServiceManager(tmp_path / "data", extra_env={"DISCO_AUTH_FAILURE_LIMIT": "2"}).start()
    dash = Dashboard(manager.url)
    try:
        token = manager.token("tenant-a")
        for guess in ("guess-1", "guess-2"):
            dash.get("/ui/signin")
            assert dash.post("/ui/signin", {"token": guess}).status_code == 401
        dash.get("/ui/signin")
        held = dash.post("/ui/signin", {"token": token})
        assert held.status_code == 429 and int(held.headers["retry-after"]) >= 1
        assert "too many failed authentications" in held.text and token not in held.text
        assert SESSION_COOKIE not in dash.http.cookies
        assert httpx.get(f"{manager.url}/api/v1/clusters", headers={"X-Auth-Token": token},
                         trust_env=False).status_code == 429  # one throttle for both
    finally:
        dash.close()
        manager.cleanup()


def test_suspend_and_resume_through_the_forms(ui: Dashboard, api_a: httpx.Client) -> None:
    cluster_id = webecho(api_a)
    page = ui.get(f"/ui/clusters/{cluster_id}").text
    assert f'action="/ui/clusters/{cluster_id}/suspend"' in page and "/resume" not in page
    assert ui.post(f"/ui/clusters/{cluster_id}/suspend", {}).status_code == 303
    wait_state(api_a, cluster_id, {"suspended"}, timeout=60)
    refused = ui.post(f"/ui/clusters/{cluster_id}/suspend", {})  # only a ready cluster: the API's 409
    assert refused.status_code == 409 and "only a ready cluster can be suspended" in refused.text
    assert 'id="actions-error"' in refused.text
    assert ui.post(f"/ui/clusters/{cluster_id}/resume", {}).status_code == 303
    wait_state(api_a, cluster_id, {"ready"}, timeout=60)


def test_a_stream_ends_when_its_session_does(sm: ServiceManager, tokens: dict[str, str],
                                             pages_seen: list[httpx.Response]) -> None:
    dash = Dashboard(sm.url)
    try:
        dash.sign_in(tokens["a"])
        with dash.http.stream("GET", "/ui/live/clusters", timeout=30) as stream:
            lines = stream.iter_lines()
            assert next(lines) == "event: clusters"
            assert dash.post("/ui/signout").status_code == 303
            rest = list(lines)  # ends by itself (a timeout would fail the test)
        assert not [line for line in rest if line.startswith("event:")]
        assert dash.get("/ui/live/clusters").status_code == 401
    finally:
        pages_seen.extend(dash.seen)
        dash.close()


def test_every_control_has_a_label(sm: ServiceManager, ui: Dashboard, api_a: httpx.Client,
                                   tokens: dict[str, str], pages_seen: list[httpx.Response]) -> None:
    """Every input, select and textarea of every page has a <label for> (no id twice), and the
    pages link their own CSS and script only (nothing from another host)."""
    cluster_id = webecho(api_a)
    pages = [ui.get(path).text for path in (
        "/ui/clusters", "/ui/clusters/new?frameworks=dask", f"/ui/clusters/{cluster_id}",
        f"/ui/clusters/{cluster_id}/delete", f"/ui/clusters/{cluster_id}/logs/master/webecho-web", "/ui/frameworks",
        "/ui/farm")]
    pages.append(ui.post("/ui/clusters/new", {"workers": "-1", "frameworks": "webecho",
                                              "prop.webecho.size": "0", "do": "plan"}).text)
    pages.append(ui.post("/ui/clusters/new", {"workers": "1", "frameworks": "webecho", "do": "plan"}).text)
    admin = Dashboard(sm.url)
    try:
        pages.append(admin.get("/ui/signin").text)
        admin.sign_in(tokens["admin"])
        pages.append(admin.get("/ui/hosts").text)
    finally:
        pages_seen.extend(admin.seen)
        admin.close()
    for page in pages:
        assert unlabelled(page) == []
        assert not re.findall(r'(?:src|href)="(?:https?:)?//(?!127\.)', page.split("<main", 1)[0])


def test_the_token_never_appears(sm: ServiceManager, tokens: dict[str, str],
                                 pages_seen: list[httpx.Response]) -> None:
    """Last: every answer the dashboard gave in this module, and every page reachable by links
    for each of the three tokens (whatever the earlier tests left: clusters, logs, deleted
    ones), their URLs and cookies, and the service manager's log hold none of the tokens."""
    answers = list(pages_seen)
    crawled: set[str] = set()
    for token in tokens.values():
        dash = Dashboard(sm.url)
        try:
            assert dash.sign_in(token).status_code == 303
            crawled |= {url.split("?", 1)[0] for url in dash.crawl()}
            crawled |= {url.split("?", 1)[0] for url in dash.crawl("/ui/clusters?deleted=true")}
        finally:
            answers.extend(dash.seen)
            dash.close()
    # The crawl saw every page of the menu and the admin's host pool, whatever ran before.
    assert {"/ui/clusters", "/ui/clusters/new", "/ui/recommend", "/ui/frameworks", "/ui/farm",
            "/ui/hosts"} <= crawled, sorted(crawled)
    assert len({response.url.path for response in answers}) >= 10
    for response in answers:
        text = response.text + str(response.url) + " ".join(response.headers.get_list("set-cookie"))
        text += response.headers.get("location", "")
        for token in tokens.values():
            assert token not in text, response.url
    log = sm.log_path.read_text()
    assert not [t for t in tokens.values() if t in log]
