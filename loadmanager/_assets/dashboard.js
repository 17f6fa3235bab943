/* loadmanager dashboard: the few things the server-rendered pages cannot do alone.
 *
 * Writes go to the dashboard's own JSON API (api/...) with the CSRF token the
 * page carries; a live run page redraws its charts and panels every poll
 * interval from runs/{id}/live until the run ends.
 */
(function (global) {
  "use strict";
  var base = document.querySelector('meta[name="lm-base"]').content;
  var csrf = document.querySelector('meta[name="csrf-token"]').content;

  function say(element, text, bad) {
    if (!element) { return; }
    element.textContent = text;
    element.classList.toggle("bad", !!bad);
  }

  function api(method, path, body, headers) {
    var all = { "Content-Type": "application/json", "X-CSRF-Token": csrf };
    Object.keys(headers || {}).forEach(function (k) { all[k] = headers[k]; });
    return fetch(base + "api/" + path, {
      method: method, headers: all, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (response) {
      return response.text().then(function (text) {
        var data = text ? JSON.parse(text) : null;
        if (!response.ok) {
          var why = data && (data.detail || data.title) || response.statusText;
          throw new Error(why);
        }
        return data;
      });
    });
  }

  function testPage(charts) {
    if (charts.length) { LMCharts.draw(document.getElementById("charts"), charts); }
    var form = document.getElementById("start-form");
    if (!form) { return; }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var message = form.querySelector(".message");
      var overrides = {};
      var users = form.elements.targetUsers.value.trim();
      var rate = form.elements.spawnRate.value.trim();
      var time = form.elements.runTime.value.trim();
      if (users) { overrides.targetUsers = Number(users); }
      if (rate) { overrides.spawnRate = Number(rate); }
      if (time) { overrides.runTime = /^\d+$/.test(time) ? Number(time) : time; }
      form.querySelector("button").disabled = true;
      say(message, "Starting…");
      api("POST", "v1/load-tests/" + form.dataset.test + "/runs", overrides)
        .then(function (run) { global.location.assign(base + "runs/" + run.id); })
        .catch(function (error) {
          form.querySelector("button").disabled = false;
          say(message, "Not started: " + error.message, true);
        });
    });
  }

  function runPage(charts, active, pollSeconds) {
    var box = document.getElementById("charts");
    var plots = LMCharts.draw(box, charts);
    var message = document.querySelector(".runbar .message");
    var stop = document.getElementById("stop");
    var runId = stop ? stop.dataset.run : null;
    var baseline = document.getElementById("baseline");

    if (stop) {
      stop.addEventListener("click", function () {
        stop.disabled = true;
        say(message, "Stopping…");
        api("POST", "v1/runs/" + stop.dataset.run + "/stop")
          .then(function () { say(message, "Stop sent: the run ends at the next poll."); refresh(); })
          .catch(function (error) { stop.disabled = false; say(message, "Not stopped: " + error.message, true); });
      });
    }
    if (baseline) {
      baseline.addEventListener("click", function () {
        baseline.disabled = true;
        api("PUT", "v1/load-tests/" + baseline.dataset.test + "/baseline",
            { runId: baseline.dataset.run }, { "If-Match": '"v' + baseline.dataset.version + '"' })
          .then(function () { say(message, "This run is now its test's baseline."); baseline.hidden = true; })
          .catch(function (error) { baseline.disabled = false; say(message, "Not changed: " + error.message, true); });
      });
    }

    function draw(specs) {
      var byId = {};
      plots.forEach(function (plot) { byId[plot.lmSpec.id] = plot; });
      specs.forEach(function (spec) {
        var plot = byId[spec.id];
        if (plot && plot.lmSpec.series.length === spec.series.length) {
          LMCharts.update(plot, spec);
        } else {
          box.textContent = "";
          LMCharts.instances = [];
          plots = LMCharts.draw(box, specs);
        }
      });
    }

    var timer = null;
    function refresh() {
      return fetch(base + "runs/" + runId + "/live", { credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) { throw new Error(response.statusText); }
          return response.json();
        })
        .then(function (live) {
          var status = document.getElementById("status");
          status.textContent = live.status;
          status.className = "status-" + live.status;
          document.getElementById("reason").textContent = live.reason;
          document.getElementById("verdict").textContent = live.verdict;
          var facts = document.createElement("dl");
          facts.className = "facts";
          live.facts.forEach(function (pair) {
            var key = document.createElement("dt"), value = document.createElement("dd");
            key.textContent = pair[0];
            value.textContent = pair[1];
            facts.appendChild(key);
            facts.appendChild(value);
          });
          document.getElementById("facts").replaceChildren(facts);
          document.getElementById("panels").innerHTML = live.panels;
          if (stop) { stop.hidden = !live.stoppable; }
          draw(live.charts);
          if (!live.active && timer !== null) {
            global.clearInterval(timer);
            timer = null;
            say(message, "The run has ended: " + live.status + (live.reason ? " (" + live.reason + ")" : "") + ".");
          }
        })
        .catch(function (error) { say(message, "Could not refresh: " + error.message, true); });
    }
    if (active && runId) {
      timer = global.setInterval(refresh, Math.max(1, pollSeconds) * 1000);
    }
    global.LMDashboard.refresh = refresh;
  }

  global.LMDashboard = { testPage: testPage, runPage: runPage, api: api };
})(window);
