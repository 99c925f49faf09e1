/* Kilowatch dashboard charts: hourly energy and efficiency with uPlot (vendored, 1.6.32).
   The page is complete without this file: every chart's figures are also in a table. */
(function () {
  "use strict";

  var style = getComputedStyle(document.documentElement);
  function color(name) { return style.getPropertyValue(name).trim(); }

  function kwh(u, v) { return v == null ? "—" : v.toFixed(v < 10 ? 2 : 1) + " kWh"; }
  function pct(u, v) { return v == null ? "—" : (v * 100).toFixed(1) + " %"; }

  function bars() {
    return uPlot.paths.bars({ size: [0.7, 60], gap: 1 });
  }

  function series(kind, data) {
    var list = [{ label: "Hour (UTC)", value: "{YYYY}-{MM}-{DD} {HH}:00" }];
    var columns = [data.t];
    if (kind === "fleet") {
      list.push({ label: "AC metered", scale: "kwh", value: kwh, stroke: color("--ac"),
                  fill: color("--ac") + "33", paths: bars(), points: { show: false } });
      columns.push(data.meterAc);
    }
    list.push({ label: "AC attributed", scale: "kwh", value: kwh, stroke: color("--ac"), width: 2,
                fill: kind === "fleet" ? undefined : color("--ac") + "33",
                paths: kind === "fleet" ? undefined : bars(), points: { show: false } });
    columns.push(data.ac);
    list.push({ label: "DC delivered", scale: "kwh", value: kwh, stroke: color("--dc"), width: 2,
                points: { show: false } });
    columns.push(data.dc);
    list.push({ label: "Efficiency", scale: "eff", value: pct, stroke: color("--eff"), width: 2,
                dash: [6, 4], points: { show: false } });
    columns.push(data.efficiency);
    return { list: list, columns: columns };
  }

  function threshold(value) {
    return function (u) {
      if (value == null) return;
      var y = u.valToPos(value, "eff", true);
      var ctx = u.ctx;
      ctx.save();
      ctx.strokeStyle = color("--bad");
      ctx.setLineDash([2, 4]);
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(u.bbox.left, y);
      ctx.lineTo(u.bbox.left + u.bbox.width, y);
      ctx.stroke();
      ctx.restore();
    };
  }

  function draw(area) {
    var source = document.getElementById(area.dataset.chart);
    if (!source || typeof uPlot === "undefined") return;
    var data = JSON.parse(source.textContent);
    if (!data.t.length) return;
    var made = series(area.dataset.series, data);
    var height = window.matchMedia("(max-width: 640px)").matches ? 220 : 260;
    var opts = {
      width: Math.max(area.clientWidth, 280),
      height: height,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      series: made.list,
      scales: {
        x: { time: true },
        kwh: { range: function (u, min, max) { return [0, Math.max(max || 0, 0.1) * 1.1]; } },
        eff: { range: function (u, min, max) {
          return [Math.min(min == null ? 0.6 : min, 0.6), Math.max(max == null ? 1 : max, 1)];
        } },
      },
      axes: [
        { stroke: color("--muted"), grid: { stroke: "#e8ecf0" }, ticks: { stroke: "#e8ecf0" },
          // 24-hour UTC clock; the date under the first tick of each day.
          values: [
            [86400 * 28, "{MMM}", "\n{YYYY}", null, null, null, null, null, 1],
            [86400, "{D} {MMM}", "\n{YYYY}", null, null, null, null, null, 1],
            [3600, "{HH}:{mm}", "\n{D} {MMM}", null, "\n{D} {MMM}", null, null, null, 1],
            [60, "{HH}:{mm}", "\n{D} {MMM}", null, "\n{D} {MMM}", null, null, null, 1],
          ] },
        { scale: "kwh", label: "kWh per hour", stroke: color("--muted"), size: 56,
          grid: { stroke: "#e8ecf0" }, ticks: { stroke: "#e8ecf0" } },
        { scale: "eff", side: 1, label: "Efficiency", stroke: color("--eff"), size: 56,
          grid: { show: false },
          values: function (u, vals) { return vals.map(function (v) { return Math.round(v * 100) + " %"; }); } },
      ],
      legend: { live: true },
      cursor: { points: { size: 6 } },
      hooks: { draw: [threshold(data.threshold)] },
    };
    var plot = new uPlot(opts, made.columns, area);
    if (typeof ResizeObserver !== "undefined") {
      new ResizeObserver(function () {
        var width = Math.max(area.clientWidth, 280);
        if (width !== plot.width) plot.setSize({ width: width, height: height });
      }).observe(area);
    }
  }

  document.querySelectorAll("[data-chart]").forEach(draw);
})();
