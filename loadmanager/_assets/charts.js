/* loadmanager charts: draws the chart specs of loadmanager/charts.py with uPlot.
 *
 * LMCharts.draw(element, specs) draws every chart into element and returns the
 * uPlot instances (also kept in LMCharts.instances, for tests and live updates);
 * LMCharts.update(instance, spec) replaces one chart's data in place.
 */
(function (global) {
  "use strict";

  function pad2(n) { return String(n).padStart(2, "0"); }

  function elapsedText(seconds) {
    var sign = seconds < 0 ? "-" : "";
    var s = Math.round(Math.abs(seconds));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return sign + (h ? h + ":" + pad2(m) : String(m)) + ":" + pad2(sec);
  }

  function clockText(epoch) {
    var d = new Date(epoch * 1000);
    return pad2(d.getUTCHours()) + ":" + pad2(d.getUTCMinutes()) + ":" + pad2(d.getUTCSeconds());
  }

  function dateText(epoch) {
    var d = new Date(epoch * 1000);
    return d.getUTCFullYear() + "-" + pad2(d.getUTCMonth() + 1) + "-" + pad2(d.getUTCDate()) +
      "\n" + pad2(d.getUTCHours()) + ":" + pad2(d.getUTCMinutes());
  }

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function fade(hex, alpha) {
    var n = parseInt(hex.slice(1), 16);
    return "rgba(" + (n >> 16 & 255) + "," + (n >> 8 & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  function markersPlugin() {
    return {
      hooks: {
        draw: [function (u) {
          var markers = (u.lmSpec && u.lmSpec.markers) || [];
          var ctx = u.ctx, dpr = global.devicePixelRatio || 1;
          ctx.save();
          markers.forEach(function (m, i) {
            var x = Math.round(u.valToPos(m.t, "x", true));
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) { return; }
            ctx.strokeStyle = ctx.fillStyle = m.kind === "stop" ? "#9a6700" : "#cf222e";
            ctx.setLineDash([5 * dpr, 4 * dpr]);
            ctx.lineWidth = 1.5 * dpr;
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
            ctx.setLineDash([]);
            ctx.font = (11 * dpr) + "px system-ui, sans-serif";
            var width = ctx.measureText(m.label).width;
            var left = x + 4 * dpr + width > u.bbox.left + u.bbox.width ? x - 4 * dpr - width : x + 4 * dpr;
            ctx.fillText(m.label, left, u.bbox.top + (12 + 13 * i) * dpr);
          });
          ctx.restore();
        }]
      }
    };
  }

  // Tick steps in whole seconds: labels are m:ss and hh:mm:ss, so a half-second
  // step would print every label twice.
  var SECONDS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
                 21600, 43200, 86400, 172800, 604800];

  function options(spec, width) {
    var ink = cssVar("--lm-ink", "#222"), grid = cssVar("--lm-grid", "#e4e4e4");
    var few = spec.x.length < 60;
    var scales = { x: { time: spec.xmode !== "elapsed" } };
    var axes = [];
    if (spec.xmode === "time") {
      // Two lines per tick: the wall clock, and the time since the run started.
      axes.push({ scale: "x", side: 2, label: "time (UTC) and elapsed since start", stroke: ink,
                  grid: { stroke: grid }, size: 64, space: 70, incrs: SECONDS,
                  values: function (u, splits) {
                    return splits.map(function (v) {
                      return v == null ? "" : clockText(v) + "\n+" + elapsedText(v - spec.t0);
                    });
                  } });
    } else if (spec.xmode === "date") {
      axes.push({ scale: "x", side: 2, label: "run start (UTC)", stroke: ink, size: 64, space: 90,
                  grid: { stroke: grid },
                  values: function (u, splits) {
                    return splits.map(function (v) { return v == null ? "" : dateText(v); });
                  } });
    } else {
      axes.push({ scale: "x", side: 2, label: "elapsed since start (m:ss)", stroke: ink,
                  grid: { stroke: grid }, incrs: SECONDS,
                  values: function (u, splits) { return splits.map(elapsedText); } });
    }
    Object.keys(spec.axes).forEach(function (scale) {
      var axis = spec.axes[scale];
      scales[scale] = { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } };
      var made = { scale: scale, side: axis.side === "right" ? 1 : 3, label: axis.label,
                   stroke: ink, grid: { show: axis.side !== "right", stroke: grid }, size: 60 };
      if (axis.whole) { made.incrs = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 1e4]; }
      axes.push(made);
    });
    var series = [{ label: spec.xmode === "time" ? "time" : "elapsed",
                    value: function (u, v) {
                      if (v == null) { return "-"; }
                      if (spec.xmode === "date") { return dateText(v).replace("\n", " "); }
                      return spec.xmode === "time"
                        ? clockText(v) + " (+" + elapsedText(v - spec.t0) + ")" : elapsedText(v);
                    } }];
    spec.series.forEach(function (line) {
      var s = { label: line.label, scale: line.scale, stroke: line.color, width: 2,
                spanGaps: false, points: { show: few, size: 5 } };
      if (line.fill) { s.fill = fade(line.color, 0.3); }
      if (line.dash) { s.dash = [6, 4]; }
      if (line.step) { s.paths = uPlot.paths.stepped({ align: 1 }); }
      series.push(s);
    });
    return {
      title: spec.title, width: width, height: 260, scales: scales, axes: axes, series: series,
      legend: { live: true }, cursor: { drag: { x: true, y: false } },
      plugins: [markersPlugin()]
    };
  }

  function data(spec) {
    return [spec.x].concat(spec.series.map(function (line) { return line.values; }));
  }

  var LMCharts = {
    instances: [],
    draw: function (element, specs) {
      var made = specs.map(function (spec) {
        var box = document.createElement("figure");
        box.className = "lm-chart";
        box.id = "chart-" + spec.id;
        element.appendChild(box);
        if (!spec.x.length) {
          box.textContent = spec.title + ": no snapshots stored.";
          return null;
        }
        var plot = new uPlot(options(spec, Math.max(box.clientWidth, 320)), data(spec), box);
        plot.lmSpec = spec;
        plot.redraw(false, false);
        return plot;
      }).filter(Boolean);
      LMCharts.instances = LMCharts.instances.concat(made);
      global.addEventListener("resize", function () {
        made.forEach(function (plot) {
          var width = Math.max(plot.root.parentNode.clientWidth, 320);
          plot.setSize({ width: width, height: 260 });
        });
      });
      return made;
    },
    update: function (plot, spec) {
      plot.lmSpec = spec;
      plot.setData(data(spec));
    }
  };
  global.LMCharts = LMCharts;
})(window);
