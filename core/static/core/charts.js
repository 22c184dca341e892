// Draws every chart of templates/admin/_chart.html: the element [data-chart] names the json_script block
// that holds the chart's spec (usage.dashboard.chart_spec). Loaded after Chart.js (vendor/chartjs), deferred.
"use strict";

(function () {
  const CAP_COLOR = "#ba2121";
  // Chart.js's own palette (its Colors plugin steps aside as soon as one dataset, the cap line, has a colour).
  const PALETTE = ["#36a2eb", "#ff6384", "#ff9f40", "#ffcd56", "#4bc0c0", "#9966ff", "#c9cbcf", "#2e7d32", "#795548"];

  // As usage.dashboard.figure prints it; an axis's ticks drop the trailing zeros past the cents.
  function figure(value, unit, tick) {
    if (value === null || value === undefined) {
      return "—";
    }
    if (unit === "$") {
      return "$" + value.toLocaleString("en-US", { minimumFractionDigits: tick ? 2 : 4, maximumFractionDigits: 4 });
    }
    if (unit === "%") {
      return value.toFixed(1) + "%";
    }
    return value.toLocaleString("en-US") + (unit ? " " + unit : "");
  }

  function dataset(spec, raw, index) {
    const color = PALETTE[index % PALETTE.length];
    const drawn = {
      label: raw.label,
      data: raw.data.map((value) => (value === null ? null : Number(value))),
      spanGaps: false,
      borderColor: color,
      backgroundColor: spec.type === "bar" && raw.type !== "line" ? color + "99" : color,
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
      data: { labels: spec.labels, datasets: spec.datasets.map((raw, index) => dataset(spec, raw, index)) },
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
            ticks: { callback: (value) => figure(value, spec.unit, true) },
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
    const spec = JSON.parse(source.textContent);
    if (spec.horizontal) {
      // One bar a label: the box grows with them (a style attribute would break the CSP; the CSSOM does not).
      box.style.height = Math.max(120, 32 * spec.labels.length + 60) + "px";
    }
    new Chart(canvas, config(spec));
  }

  document.querySelectorAll("[data-chart]").forEach(draw);
})();
