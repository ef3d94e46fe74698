// The embedded dashboard's behaviour: theme toggle, refreshing fragments (polling, and a
// Channels websocket when the page says push is enabled), Plotly charts, and the actions that
// call the /v1 API with the session cookie and the CSRF header.
(function () {
  "use strict";

  // --- theme -----------------------------------------------------------------------------
  function currentTheme() { return document.documentElement.dataset.theme === "dark" ? "dark" : "light"; }
  function setTheme(theme) {
    document.documentElement.dataset.theme = theme;
    try { window.localStorage.setItem("theme", theme); } catch (e) { /* storage blocked */ }
    document.querySelectorAll("[data-plotly]").forEach(function (el) {
      if (el.dataset.drawn && window.Plotly) { window.Plotly.relayout(el, themeLayout()); }
    });
  }

  // --- API calls -------------------------------------------------------------------------
  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  // Resolves to {ok, status, body, message}; message is the API's error.message verbatim.
  function api(method, url, payload) {
    var options = {
      method: method,
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRFToken": csrfToken() },
    };
    if (payload !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(payload);
    }
    return fetch(url, options).then(function (response) {
      return response.text().then(function (text) {
        var body = null;
        try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
        var message = "";
        if (!response.ok) {
          message = body && body.error && body.error.message
            ? body.error.message
            : "The server answered " + response.status + " " + response.statusText;
        }
        return { ok: response.ok, status: response.status, body: body, message: message,
                 location: response.headers.get("Location") };
      });
    }, function (error) {
      return { ok: false, status: 0, body: null, message: "No answer from the server: " + error.message };
    });
  }

  function say(scope, text, kind) {
    var el = scope && scope.querySelector("[data-form-message]");
    if (!el) { return; }
    el.textContent = text || "";
    el.classList.remove("error", "ok");
    if (kind) { el.classList.add(kind); }
  }

  function busy(button, on) { if (button) { button.disabled = !!on; } }

  // --- fragments -------------------------------------------------------------------------
  var inFlight = {};

  function fragmentUrl(name) {
    var url = new URL(window.location.href);
    url.searchParams.set("fragment", name);
    url.hash = "";
    return url.toString();
  }

  function refreshFragment(el) {
    var name = el.dataset.fragment;
    if (inFlight[name]) { return Promise.resolve(); }
    inFlight[name] = true;
    return fetch(fragmentUrl(name), { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (response) {
        if (response.redirected && /\/signin/.test(response.url)) { window.location.reload(); return; }
        if (!response.ok) { return; }
        return response.text().then(function (html) {
          if (el.contains(document.activeElement) && document.activeElement.matches("input, textarea, select")) {
            return; // the user is typing in it: try again next time
          }
          el.innerHTML = html;
          drawCharts(el);
          el.dispatchEvent(new CustomEvent("fragment:refreshed", { bubbles: true }));
        });
      })
      .catch(function () { /* offline for a moment: the next tick tries again */ })
      .then(function () { inFlight[name] = false; });
  }

  function refreshTopic(topic) {
    document.querySelectorAll("[data-fragment]").forEach(function (el) {
      var topics = (el.dataset.topics || "").split(" ");
      if (!topic || topics.indexOf(topic) >= 0) { refreshFragment(el); }
    });
  }

  function startPolling() {
    document.querySelectorAll("[data-fragment][data-refresh]").forEach(function (el) {
      var every = parseInt(el.dataset.refresh, 10);
      if (!every || every < 1000) { return; }
      window.setInterval(function () { if (!document.hidden) { refreshFragment(el); } }, every);
    });
    document.addEventListener("visibilitychange", function () { if (!document.hidden) { refreshTopic(null); } });
  }

  function startPush() {
    if (document.body.dataset.push !== "1" || !window.WebSocket) { return; }
    var delay = 1000;
    function connect() {
      var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      var socket = new WebSocket(scheme + "//" + window.location.host + "/ws/dashboard/");
      socket.onopen = function () { delay = 1000; document.body.dataset.pushConnected = "1"; };
      socket.onmessage = function (event) {
        try { refreshTopic(JSON.parse(event.data).topic); } catch (e) { /* not for us */ }
      };
      socket.onclose = function () {
        document.body.dataset.pushConnected = "0";
        window.setTimeout(connect, delay); // polling carries on meanwhile
        delay = Math.min(delay * 2, 30000);
      };
    }
    connect();
  }

  // --- charts ----------------------------------------------------------------------------
  function themeLayout() {
    var style = getComputedStyle(document.documentElement);
    var fg = style.getPropertyValue("--fg").trim() || "#1d2330";
    var line = style.getPropertyValue("--line").trim() || "#e3e6ec";
    return {
      "font.color": fg, "title.font.color": fg,
      "xaxis.gridcolor": line, "yaxis.gridcolor": line,
      "xaxis.linecolor": line, "yaxis.linecolor": line,
      "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
    };
  }

  function applyTheme(layout) {
    var t = themeLayout();
    layout.font = Object.assign({}, layout.font, { color: t["font.color"] });
    if (layout.title) { layout.title.font = Object.assign({}, layout.title.font, { color: t["font.color"] }); }
    ["xaxis", "yaxis"].forEach(function (axis) {
      layout[axis] = Object.assign({}, layout[axis], { gridcolor: t["xaxis.gridcolor"], linecolor: t["xaxis.linecolor"] });
    });
    layout.autosize = true;
    delete layout.width;
    return layout;
  }

  function drawCharts(root) {
    if (!window.Plotly) { return; }
    root.querySelectorAll("[data-plotly]").forEach(function (el) {
      var source = document.getElementById(el.dataset.plotly);
      if (!source) { return; }
      var figure = JSON.parse(source.textContent);
      var layout = applyTheme(figure.layout || {});
      window.Plotly.newPlot(el, figure.data || [], layout, { responsive: true, displaylogo: false });
      el.dataset.drawn = "1";
    });
  }

  // --- dialogs ---------------------------------------------------------------------------
  function openDialog(id) {
    var dialog = document.getElementById(id);
    if (!dialog) { return; }
    say(dialog, "");
    dialog.showModal();
    var first = dialog.querySelector("textarea, input");
    if (first) { first.focus(); }
  }

  // --- actions ---------------------------------------------------------------------------
  function killSwitch(form) {
    var action = form.dataset.killSwitchForm;
    var button = form.querySelector("button[type=submit]");
    var payload = action === "activate"
      ? { action: "activate", scope: "global", reason: form.elements.reason.value.trim(),
          flatten: !!(form.elements.flatten && form.elements.flatten.checked) }
      : { action: "deactivate", scope: "global", admin_code: form.elements.admin_code.value };
    if (action === "activate" && !payload.reason) { say(form, "Give a reason.", "error"); return; }
    busy(button, true);
    say(form, "Sending…");
    api("POST", "/v1/controls/kill-switch", payload).then(function (result) {
      busy(button, false);
      if (!result.ok) { say(form, result.message, "error"); return; }
      form.reset();
      form.closest("dialog").close();
      refreshTopic("killswitch");
      refreshTopic("orders");
      refreshTopic("alerts");
    });
  }

  function placeOrder(form) {
    var button = form.querySelector("button[type=submit]");
    var f = form.elements;
    var payload = { strategy_id: parseInt(f.strategy_id.value, 10), symbol: f.symbol.value.trim().toUpperCase(),
                    side: f.side.value, quantity: f.quantity.value.trim(), mode: f.mode.value };
    busy(button, true);
    say(form, "Sending the order…");
    api("POST", "/v1/orders", payload).then(function (result) {
      busy(button, false);
      if (result.ok) {
        var order = (result.body && result.body.data) || {};
        say(form, "Order " + (order.id || "") + ": " + (order.status || "sent") +
            (order.reject_reason ? " · " + order.reject_reason : ""), order.reject_reason ? "error" : "ok");
      } else {
        say(form, result.message, "error");
      }
      refreshTopic("orders");
      refreshTopic("positions");
    });
  }

  function startRun(form) {
    var f = form.elements;
    submitJob(form, "/v1/runs", "/runs/", "Run", {
      strategy_id: parseInt(f.strategy_id.value, 10), start: f.start.value || null, end: f.end.value || null,
      initial_capital: f.initial_capital.value.trim(), engine_mode: f.engine_mode.value });
  }

  function startWalkForward(form) {
    var f = form.elements;
    var grid;
    try { grid = JSON.parse(f.parameter_grid.value || "{}"); }
    catch (error) { say(form, "Parameter grid: not valid JSON (" + error.message + ")", "error"); return; }
    submitJob(form, "/v1/walk-forward", "/walk-forward/", "Walk-forward", {
      strategy_id: parseInt(f.strategy_id.value, 10), in_sample_days: parseInt(f.in_sample_days.value, 10),
      out_of_sample_days: parseInt(f.out_of_sample_days.value, 10), step_days: parseInt(f.step_days.value, 10),
      window_type: f.window_type.value, objective: f.objective.value, parameter_grid: grid });
  }

  // POST a job (202 + Location), show its progress, and open its page once it succeeds.
  function submitJob(form, apiUrl, pagePrefix, label, payload) {
    var button = form.querySelector("button[type=submit]");
    var box = form.querySelector("[data-run-progress]");
    var status = form.querySelector("[data-run-status]");
    var bar = box.querySelector(".progress > span");
    busy(button, true);
    say(form, "");
    box.hidden = false;
    status.textContent = "Submitting…";
    bar.style.width = "0%";
    api("POST", apiUrl, payload).then(function (result) {
      if (!result.ok) { busy(button, false); box.hidden = true; say(form, result.message, "error"); return; }
      var job = result.body.data;
      var url = job.url || result.location || apiUrl + "/" + job.id;
      refreshTopic("runs");
      watchRun(url, job.id, status, bar, function (final) {
        busy(button, false);
        if (final.status === "succeeded") { window.location.assign(pagePrefix + job.id); return; }
        box.hidden = true;
        say(form, label + " " + job.id + " " + final.status + (final.error_message ? ": " + final.error_message : ""), "error");
        refreshTopic("runs");
      });
    });
  }

  function watchRun(url, id, status, bar, done) {
    api("GET", url).then(function (result) {
      if (!result.ok) { status.textContent = result.message; window.setTimeout(function () { watchRun(url, id, status, bar, done); }, 2000); return; }
      var run = result.body.data;
      var pct = Math.round((run.progress || 0) * 100);
      if (status) { status.textContent = "Run " + id + ": " + run.status + " · " + pct + "%"; }
      if (bar) { bar.style.width = pct + "%"; }
      if (["succeeded", "failed", "cancelled"].indexOf(run.status) >= 0) { done(run); return; }
      window.setTimeout(function () { watchRun(url, id, status, bar, done); }, 1000);
    });
  }

  function saveConfig(form) {
    var button = form.querySelector("button[type=submit]");
    var list = form.querySelector("[data-problems]");
    list.innerHTML = "";
    busy(button, true);
    say(form, "Validating…");
    api("PATCH", form.dataset.url, { config_yaml: form.elements.config_yaml.value }).then(function (result) {
      busy(button, false);
      if (result.ok) { say(form, "Saved.", "ok"); window.location.reload(); return; }
      var problems = (result.body && result.body.error && result.body.error.details && result.body.error.details.problems) || [];
      problems.forEach(function (problem) {
        var li = document.createElement("li");
        li.textContent = problem;
        list.appendChild(li);
      });
      say(form, result.message, "error");
    });
  }

  function decide(box, approve, button) {
    var note = box.querySelector("[data-decide-note]");
    busy(button, true);
    api("POST", box.dataset.decide, { approve: approve, note: note ? note.value : "" }).then(function (result) {
      busy(button, false);
      if (!result.ok) { say(box, result.message, "error"); return; }
      say(box, approve ? "Approved." : "Rejected.", "ok");
      refreshTopic("limits");
      refreshTopic("approvals");
      window.setTimeout(function () { if (!document.querySelector("[data-fragment]")) { window.location.reload(); } }, 300);
    });
  }

  function liftPause(form) {
    var button = form.querySelector("button[type=submit]");
    busy(button, true);
    api("POST", "/v1/controls/pauses/lift", {
      strategy_id: Number(form.elements.strategy_id.value),
      mode: form.elements.mode.value,
      reason: form.elements.reason.value,
    }).then(function (result) {
      busy(button, false);
      if (!result.ok) { say(form, result.message, "error"); return; }
      say(form, "Pause lifted.", "ok");
      refreshTopic("positions");
    });
  }

  function acknowledge(button) {
    var row = button.closest(".actions") || button.parentNode;
    busy(button, true);
    api("PATCH", "/v1/alerts/" + button.dataset.ackAlert + "/acknowledge").then(function (result) {
      if (!result.ok) { busy(button, false); say(row, result.message, "error"); return; }
      refreshTopic("alerts");
    });
  }

  // --- wiring ----------------------------------------------------------------------------
  document.addEventListener("click", function (event) {
    var target = event.target.closest("button, a");
    if (!target) { return; }
    if (target.matches("[data-theme-toggle]")) { setTheme(currentTheme() === "dark" ? "light" : "dark"); return; }
    if (target.matches("[data-open-dialog]")) { openDialog(target.dataset.openDialog); return; }
    if (target.matches("[data-close-dialog]")) { target.closest("dialog").close(); return; }
    if (target.matches("[data-ack-alert]")) { acknowledge(target); return; }
    if (target.matches("[data-decide-approve]")) {
      decide(target.closest("[data-decide]"), target.dataset.decideApprove === "true", target);
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var handler = form.matches("[data-kill-switch-form]") ? killSwitch
      : form.matches("[data-order-form]") ? placeOrder
      : form.matches("[data-run-form]") ? startRun
      : form.matches("[data-wf-form]") ? startWalkForward
      : form.matches("[data-config-form]") ? saveConfig
      : form.matches("[data-lift-form]") ? liftPause
      : null;
    if (!handler) { return; }
    event.preventDefault();
    handler(form);
  });

  function runDetailWatch() {
    // A run page whose run is not finished reloads itself when it finishes (charts appear).
    var status = document.querySelector("[data-run-id][data-run-final='0'], [data-wf-id][data-run-final='0']");
    if (!status) { return; }
    var id = status.dataset.runId || status.dataset.wfId;
    var url = status.dataset.runId ? "/v1/runs/" + id : "/v1/walk-forward/" + id;
    watchRun(url, id, null, null, function () { window.location.reload(); });
    document.addEventListener("fragment:refreshed", function () {
      if (document.querySelector("[data-run-id][data-run-final='1'], [data-wf-id][data-run-final='1']")) { window.location.reload(); }
    });
  }

  function start() {
    // Deferred scripts run before DOMContentLoaded, so plotly.min.js (after this one) is here.
    drawCharts(document);
    document.documentElement.dataset.ready = "1";
    startPolling();
    startPush();
    runDetailWatch();
  }

  // A deferred script runs while readyState is "interactive", before the deferred scripts after
  // it (plotly.min.js); DOMContentLoaded waits for all of them.
  if (document.readyState === "complete") { start(); } else { document.addEventListener("DOMContentLoaded", start); }
})();
