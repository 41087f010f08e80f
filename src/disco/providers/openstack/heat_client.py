"""Heat stacks through openstacksdk, as the OpenStack provider needs them: create, watch (with
the reasons of whatever failed, nested stacks included), update, suspend, resume, delete
(idempotent), outputs and a resource's attributes. Synchronous, like openstacksdk: the
provider calls it from a thread.

The cloud is a `clouds.yaml` entry given as a dict; nothing is read from the environment or
from the user's own `clouds.yaml` (a service manager serves many users, each with their own
cloud)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import openstack
from keystoneauth1 import exceptions as ks_exc
from openstack import exceptions as os_exc

# What openstacksdk and keystoneauth raise (unreachable endpoint, refused credentials, …);
# the provider turns them into cluster events at its boundary.
CLOUD_ERRORS: tuple[type[Exception], ...] = (os_exc.SDKException, ks_exc.ClientException)
POLL_S = 1.0
# Each call to the cloud's APIs, unless the entry sets its own `api_timeout`: a call left
# unanswered must fail the step that made it, not hold a cluster's driver for good.
DEFAULT_API_TIMEOUT_S = 120.0
NESTED_DEPTH = 3   # ResourceGroup members are a nested stack; their servers one level further


class HeatError(RuntimeError):
    """A stack operation failed; `reasons` are Heat's own, one per failed resource."""

    def __init__(self, message: str, reasons: list[str] | None = None, *, made_nothing: bool = False,
                 unusable_entry: bool = False) -> None:
        super().__init__(message)
        self.reasons = reasons or []
        # Certain that the call left nothing in the cloud (Heat refused it, 4xx).
        self.made_nothing = made_nothing or unusable_entry
        # The cloud's settings themselves can reach no Heat: nothing was ever made with them.
        self.unusable_entry = unusable_entry


@dataclass(frozen=True)
class StackState:
    id: str
    name: str
    status: str                 # e.g. CREATE_IN_PROGRESS, CREATE_COMPLETE, UPDATE_FAILED
    reason: str
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def action(self) -> str:
        return self.status.split("_", 1)[0]

    @property
    def in_progress(self) -> bool:
        return self.status.endswith("_IN_PROGRESS")

    @property
    def failed(self) -> bool:
        return self.status.endswith("_FAILED")


def connect(cloud: dict[str, Any]) -> Any:
    """An openstacksdk connection from one cloud's settings (the body of a `clouds.yaml`
    entry: auth_type, auth, region_name, interface, …)."""
    try:
        return openstack.connect(load_yaml_config=False, load_envvars=False,
                                 **{"api_timeout": DEFAULT_API_TIMEOUT_S, **cloud})
    # ValueError: openstacksdk formats the entry's values with str.format (a stray brace).
    except (*CLOUD_ERRORS, TypeError, KeyError, ValueError) as exc:
        raise HeatError(f"the cloud's settings are not usable: {_short(exc)}", unusable_entry=True) from None


def _cannot_log_in(exc: Exception) -> HeatError:
    """keystoneauth raises AuthorizationFailure before Keystone is asked, for settings that can
    never log in (e.g. both a project and a trust to scope to): nothing was made with them."""
    return HeatError(f"the cloud's settings cannot log in: {_short(exc)}", unusable_entry=True)


def _refused_login(exc: Exception) -> HeatError:
    """Keystone refused the entry's credentials: 401 (a wrong password, an expired application
    credential) or 404 (a deleted application credential, an unknown user id). Nothing was made with this login; but the entry is not unusable
    for good (a password can be set back), so a delete still asks again. Keystone's message
    names no credential."""
    return HeatError(f"the cloud refused the login: Keystone did not accept the entry's "
                     f"credentials (user and password, or application credential): {_short(exc)}",
                     made_nothing=True)


class HeatStacks:
    def __init__(self, conn: Any) -> None:
        self.conn = conn
        try:
            # Logs in first, on its own: what Keystone answers here is about the credentials.
            conn.session.get_token()
        except ks_exc.AuthorizationFailure as exc:
            raise _cannot_log_in(exc) from None
        except (ks_exc.Unauthorized, ks_exc.NotFound) as exc:
            raise _refused_login(exc) from None
        try:
            self.heat = conn.orchestration  # (finds Heat in the catalog)
        except ks_exc.AuthorizationFailure as exc:
            raise _cannot_log_in(exc) from None
        if not hasattr(self.heat, "find_stack"):
            # openstacksdk found no orchestration API version it knows (its bare REST proxy).
            raise HeatError("the cloud offers no Heat (orchestration) API openstacksdk can use",
                            unusable_entry=True)

    # -- reading --------------------------------------------------------------------------

    def state(self, stack_id: str) -> StackState | None:
        """The stack as Heat shows it now; None once it is gone."""
        try:
            stack = self.heat.get_stack(stack_id)
        except os_exc.NotFoundException:
            return None
        if stack is None or stack.status == "DELETE_COMPLETE":
            return None
        outputs = {o["output_key"]: o.get("output_value") for o in (stack.outputs or [])}
        return StackState(stack.id, stack.name, stack.status, stack.status_reason or "", outputs)

    def events(self, stack_id: str, after: str | None = None) -> list[dict[str, Any]]:
        """Events of the stack and its nested stacks, oldest first (after the event id `after`)."""
        name = self._name(stack_id)
        params: dict[str, Any] = {"nested_depth": NESTED_DEPTH, "sort_dir": "asc", "limit": 1000}
        if after:
            params["marker"] = after
        answer = self.heat.get(f"/stacks/{name}/{stack_id}/events", params=params)
        _raise_for(answer, "listing events")
        return list(answer.json().get("events", []))

    def failures(self, stack_id: str) -> list[str]:
        """Why it failed: each failed resource's own reason, in the order they failed, so the
        root cause (a group's member, a server) comes before the resources that failed
        because of it; the stack's own event, which only repeats them, is left out."""
        stack_name = self._name(stack_id)
        reasons: list[str] = []
        for event in self.events(stack_id):
            if not str(event.get("resource_status", "")).endswith("_FAILED"):
                continue
            if event.get("logical_resource_id") == stack_name:
                continue
            line = f"{event.get('logical_resource_id')}: {event.get('resource_status_reason', '')}"
            if line not in reasons:
                reasons.append(line)
        return reasons

    def find(self, name: str) -> str | None:
        """The id of the live stack of that name, or None."""
        try:
            stack = self.heat.find_stack(name, ignore_missing=True)
        except os_exc.NotFoundException:
            return None
        except ks_exc.AuthorizationFailure as exc:
            raise _cannot_log_in(exc) from None
        if stack is None or stack.status == "DELETE_COMPLETE":
            return None
        return str(stack.id)

    def resources(self, stack_id: str, nested_depth: int = NESTED_DEPTH) -> list[dict[str, Any]]:
        """Every resource of the stack and of its nested stacks, with its attributes (each
        names its `parent_resource` when it is nested)."""
        answer = self.heat.get(f"/stacks/{self._name(stack_id)}/{stack_id}/resources",
                               params={"nested_depth": nested_depth, "with_detail": True})
        _raise_for(answer, "listing resources")
        return list(answer.json().get("resources", []))

    def parameters(self, stack_id: str) -> dict[str, Any]:
        try:
            return dict(self.heat.get_stack(stack_id).parameters or {})
        except os_exc.NotFoundException:
            raise HeatError(f"stack {stack_id} is gone") from None

    def scale(self, stack_id: str, parameters: dict[str, Any], timeout_mins: int) -> None:
        """A stack update that keeps the template and files and changes only these parameters
        (PATCH: Heat's "existing" update)."""
        answer = self.heat.patch(f"/stacks/{self._name(stack_id)}/{stack_id}",
                                 json={"parameters": parameters, "timeout_mins": timeout_mins,
                                       "disable_rollback": True})
        _raise_for(answer, "updating the stack")

    def outputs(self, stack_id: str) -> dict[str, Any]:
        state = self.state(stack_id)
        if state is None:
            raise HeatError(f"stack {stack_id} is gone")
        return state.outputs

    def resource(self, stack_id: str, resource: str, with_attributes: tuple[str, ...] = ()) -> dict[str, Any]:
        """One resource of the stack as Heat shows it: `resource_status`, `attributes` (e.g. a
        WaitCondition's `data`: what each node signalled), … — readable while the stack is
        still in progress. Heat shows a resource's `show` only, unless attributes are named."""
        answer = self.heat.get(f"/stacks/{self._name(stack_id)}/{stack_id}/resources/{resource}",
                               params={"with_attr": list(with_attributes)} if with_attributes else None)
        _raise_for(answer, f"reading {resource}")
        return dict(answer.json().get("resource") or {})

    def resource_attributes(self, stack_id: str, resource: str, *names: str) -> dict[str, Any]:
        return dict(self.resource(stack_id, resource, names).get("attributes") or {})

    # -- changing -------------------------------------------------------------------------

    def create(self, name: str, template: dict[str, Any], parameters: dict[str, Any],
               timeout_mins: int, files: dict[str, str] | None = None) -> str:
        """Starts creating the stack (rollback off: on failure the provider reads the reasons,
        then deletes it); its id. `files`: templates the main one names (a worker's)."""
        try:
            stack = self.heat.create_stack(name=name, template=template, parameters=parameters,
                                           files=files or {}, timeout_mins=timeout_mins,
                                           disable_rollback=True)
        except os_exc.SDKException as exc:
            status = getattr(exc, "status_code", None) or 0
            raise HeatError(f"Heat refused the stack: {_short(exc)}", made_nothing=400 <= status < 500) from None
        return str(stack.id)

    def update(self, stack_id: str, template: dict[str, Any], parameters: dict[str, Any],
               timeout_mins: int, files: dict[str, str] | None = None) -> None:
        """A stack update (scaling): the whole template (and its files) again, new parameters."""
        body = {"template": template, "files": files or {}, "parameters": parameters,
                "timeout_mins": timeout_mins, "disable_rollback": True}
        answer = self.heat.put(f"/stacks/{self._name(stack_id)}/{stack_id}", json=body)
        _raise_for(answer, "updating the stack")

    def suspend(self, stack_id: str) -> None:
        self._action(stack_id, "suspend")

    def resume(self, stack_id: str) -> None:
        self._action(stack_id, "resume")

    def delete(self, stack_id: str, timeout_s: float = 600.0) -> None:
        """Deletes the stack and waits until Heat no longer knows it; a stack already gone is
        fine. A DELETE_FAILED is tried again once (a resource still busy), then reported."""
        for attempt in (1, 2):
            try:
                self.heat.delete_stack(stack_id)
            except os_exc.NotFoundException:
                return
            state = self.wait(stack_id, "DELETE", timeout_s)
            if state is None:
                return
            if attempt == 2:
                raise HeatError(f"stack {state.name} could not be deleted: {state.reason}",
                                self.failures(stack_id))

    def wait(self, stack_id: str, action: str, timeout_s: float,
             on_event: Callable[[dict[str, Any]], None] | None = None) -> StackState | None:
        """Until the stack's `action` (CREATE, UPDATE, DELETE, SUSPEND, RESUME) is no longer in
        progress; its state then (None: gone). Each new event goes to `on_event` as it comes."""
        deadline = time.monotonic() + timeout_s
        last_event: str | None = None
        while True:
            state = self.state(stack_id)
            if on_event is not None and state is not None:
                for event in self.events(stack_id, after=last_event):
                    last_event = event.get("id", last_event)
                    on_event(event)
            if state is None or not (state.in_progress and state.action == action):
                return state
            if time.monotonic() > deadline:
                raise HeatError(f"stack {state.name} still {state.status} after {timeout_s:g} s")
            time.sleep(POLL_S)

    # -- helpers --------------------------------------------------------------------------

    def _action(self, stack_id: str, verb: str) -> None:
        answer = self.heat.post(f"/stacks/{self._name(stack_id)}/{stack_id}/actions", json={verb: None})
        _raise_for(answer, f"asking for {verb}")

    def _name(self, stack_id: str) -> str:
        try:
            return str(self.heat.get_stack(stack_id).name)
        except os_exc.NotFoundException:
            raise HeatError(f"stack {stack_id} is gone") from None


def _raise_for(answer: Any, doing: str) -> None:
    if answer.status_code >= 400:
        try:
            detail = answer.json().get("error", {}).get("message") or answer.text
        except ValueError:
            detail = answer.text
        raise HeatError(f"Heat answered {answer.status_code} {doing}: {_short(detail)}")


def _short(value: object, limit: int = 500) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
