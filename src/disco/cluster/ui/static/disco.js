// The dashboard's only script (vendored: no CDN). The pages work without it; with it they are
// live: server-sent events update states and logs, and web UI lights show reachability.
// Text goes into the page with textContent only; HTML comes only from this origin's own pages.
"use strict";
(function () {
  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  function setState(el, state, cls) {
    el.textContent = state;
    el.className = "state " + (cls || "busy");
  }

  // Sections marked data-live-section are refreshed from the page itself (same origin) when the
  // state changes, unless the keyboard focus is inside one (it would be lost).
  function refreshSections() {
    fetch(location.href, { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (!html) return;
      var doc = new DOMParser().parseFromString(html, "text/html");
      $$("[data-live-section]").forEach(function (old) {
        var fresh = doc.getElementById(old.id);
        if (fresh && !old.contains(document.activeElement)) {
          old.replaceWith(document.importNode(fresh, true));
        }
      });
      watchLights();
    });
  }

  // The cluster list: rows updated, added and removed from `clusters` events.
  function liveList(table) {
    var tbody = $("tbody", table);
    var source = new EventSource(table.getAttribute("data-live-clusters"));
    var note = $("[data-live-note]");
    if (note) note.hidden = false;
    source.addEventListener("clusters", function (ev) {
      var rows = JSON.parse(ev.data);
      var seen = {};
      rows.forEach(function (c) {
        seen[c.id] = true;
        var tr = $('tr[data-cluster-id="' + c.id + '"]', tbody);
        if (!tr) {
          tr = document.createElement("tr");
          tr.setAttribute("data-cluster-id", c.id);
          var name = document.createElement("td"), link = document.createElement("a");
          link.href = "/ui/clusters/" + encodeURIComponent(c.id);
          link.textContent = c.name;
          name.appendChild(link);
          var state = document.createElement("td"), badge = document.createElement("span");
          badge.setAttribute("data-field", "state");
          state.appendChild(badge);
          var workers = document.createElement("td");
          workers.setAttribute("data-field", "workers");
          var fws = document.createElement("td"), prov = document.createElement("td");
          fws.textContent = c.frameworks.join(", ");
          prov.textContent = c.provider;
          [name, state, workers, fws, prov].forEach(function (td) { tr.appendChild(td); });
          tbody.appendChild(tr);
        }
        setState($('[data-field="state"]', tr), c.state, c.state_class);
        $('[data-field="workers"]', tr).textContent = c.workers;
        var reason = $('[data-field="status_reason"]', tr);
        if (reason) reason.textContent = c.status_reason;
      });
      $$("tr[data-cluster-id]", tbody).forEach(function (tr) {
        if (!seen[tr.getAttribute("data-cluster-id")]) tr.remove();
      });
      var empty = $("[data-empty]");
      if (empty) empty.hidden = rows.length > 0;
    });
  }

  // A cluster's page: its state, timeline and deployment log as they happen.
  function liveCluster(root) {
    var url = root.getAttribute("data-live-cluster");
    if (!url) return;
    var source = new EventSource(url);
    var log = $("[data-deployment-log]"), timeline = $("[data-timeline]");
    source.addEventListener("cluster-event", function (ev) {
      var e = JSON.parse(ev.data);
      var took = e.duration_s === null ? "" : " (" + e.duration_s.toFixed(2) + " s)";
      if (log) {
        var atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        log.appendChild(document.createTextNode(e.at + " [" + e.level + "] " + e.step + ": " + e.message + took + "\n"));
        if (atEnd) log.scrollTop = log.scrollHeight;
      }
      if (timeline) {
        var li = document.createElement("li");
        li.className = e.level;
        var time = document.createElement("time");
        time.dateTime = e.at;
        time.textContent = e.at.slice(11, 19);
        var step = document.createElement("strong");
        step.textContent = e.step;
        li.appendChild(time);
        li.appendChild(document.createTextNode(" "));
        li.appendChild(step);
        li.appendChild(document.createTextNode(" " + e.message + " "));
        if (took) {
          var d = document.createElement("span");
          d.className = "duration";
          d.textContent = e.duration_s.toFixed(2) + " s";
          li.appendChild(d);
        }
        timeline.appendChild(li);
      }
    });
    var first = true;
    source.addEventListener("state", function (ev) {
      var s = JSON.parse(ev.data);
      setState($('[data-field="state"]', root), s.state, s.state_class);
      $('[data-field="status_reason"]', root).textContent = s.status_reason;
      $$('[data-field="workers"]', root).forEach(function (el) { el.textContent = s.workers; });
      var input = $("form[action$='/scale'] input[name=workers]", root);
      if (input && document.activeElement !== input && !input.hasAttribute("aria-invalid")) input.value = s.workers;
      if (!first) refreshSections();
      first = false;
      if (s.target === "deleted") {  // its web UIs are going away: no more checks
        $$("[data-reach]", root).forEach(function (light) { light.removeAttribute("data-reach"); });
      }
      if (s.state === "deleted") source.close();
    });
  }

  // A process log, followed from where the page's text ends.
  function liveLog(pre) {
    var source = new EventSource(pre.getAttribute("data-process-log"));
    source.addEventListener("log", function (ev) {
      var chunk = JSON.parse(ev.data);
      var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.appendChild(document.createTextNode(chunk.text));
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    });
  }

  // Web UI lights: green when the UI answers HTTP, red when not; checked every 15 s.
  var lightTimer = null;
  function watchLights() {
    function check() {
      $$("[data-reach]").forEach(function (light) {
        fetch(light.getAttribute("data-reach"), { credentials: "same-origin" }).then(function (r) {
          return r.ok ? r.json() : { up: false };
        }).then(function (answer) {
          light.className = "light " + (answer.up ? "up" : "down");
          light.setAttribute("aria-label", answer.up ? "reachable" : "not reachable");
        }).catch(function () {});
      });
    }
    check();
    if (lightTimer === null) lightTimer = setInterval(check, 15000);
  }

  // JavaScript on: show only the chosen provider's settings.
  function providerChoice(select) {
    function show() {
      $$("[data-provider]").forEach(function (set) {
        var mine = set.getAttribute("data-provider") === select.value;
        set.hidden = !mine;
        if (mine) set.open = true;
      });
    }
    select.addEventListener("change", show);
    show();
  }

  // The task farm's page: its sections refreshed whenever the `farm` stream says a number changed.
  function liveFarm(root) {
    var source = new EventSource(root.getAttribute("data-live-farm"));
    var note = $("[data-live-note]");
    source.addEventListener("farm", function () {
      if (note) note.hidden = false;
      refreshSections();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var table = $("[data-live-clusters]");
    if (table && window.EventSource) liveList(table);
    var cluster = $("[data-live-cluster]");
    if (cluster && window.EventSource) liveCluster(cluster);
    var pre = $("[data-process-log]");
    if (pre && window.EventSource) liveLog(pre);
    var farm = $("[data-live-farm]");
    if (farm && window.EventSource) liveFarm(farm);
    watchLights();
    var select = $("[data-provider-select]");
    if (select) providerChoice(select);
    var summary = $("#error-summary");
    if (summary) summary.focus();
  });
})();
