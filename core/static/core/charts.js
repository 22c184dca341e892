// Draws every chart of templates/admin/_chart.html: the element [data-chart] names the json_script block
// that holds the chart's spec (usage.dashboard.chart_spec). Loaded after Chart.js (vendor/chartjs), deferred.
"use strict";

(function () {
  const CAP_COLOR = "#ba2121";

  function figure(value, unit) {
    if (value === null || value === undefined) {
      return "—";
    }
    if (unit === "$") {
      return "$" + value.toLocaleString("en-US", { minimumFractionDigits: 4, maximumFractionDigits: 4 });
    }
    if (unit === "%") {
      return value.toFixed(1) + "%";
    }
    return value.toLocaleString("en-US") + (unit ? " " + unit : "");
  }

  function dataset(spec, raw) {
    const drawn = {
      label: raw.label,
      data: raw.data.map((value) => (value === null ? null : Number(value))),
      spanGaps: false,
    };
    if (raw.type) {
      drawn.type = raw.type;
    }
    if (raw.dashed) {
      Object.assign(drawn, { borderColor: CAP_COLOR, backgroundColor: CAP_COLOR, borderDash: [6, 4], pointRadius: 0 });
    }
    if (spec.type === "line" || raw.type === "line") {
      drawn.tension = 0;
    }
    return drawn;
  }

  function config(spec) {
    const valueAxis = spec.horizontal ? "x" : "y";
    const categoryAxis = spec.horizontal ? "y" : "x";
    return {
      type: spec.type,
      data: { labels: spec.labels, datasets: spec.datasets.map((raw) => dataset(spec, raw)) },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        indexAxis: spec.horizontal ? "y" : "x",
        interaction: { mode: "index", intersect: false },
        scales: {
          [categoryAxis]: { stacked: spec.stacked },
          [valueAxis]: {
            stacked: spec.stacked,
            beginAtZero: true,
            ticks: { callback: (value) => figure(value, spec.unit) },
          },
        },
        plugins: {
          legend: { display: spec.datasets.length > 1 },
          tooltip: {
            callbacks: { label: (item) => item.dataset.label + ": " + figure(item.parsed[valueAxis], spec.unit) },
          },
        },
      },
    };
  }

  function draw(box) {
    const source = document.getElementById(box.dataset.chart);
    const canvas = box.querySelector("canvas");
    if (!source || !canvas || typeof Chart === "undefined") {
      return;
    }
    new Chart(canvas, config(JSON.parse(source.textContent)));
  }

  document.querySelectorAll("[data-chart]").forEach(draw);
})();
