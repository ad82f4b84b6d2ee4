// The page of cxr-age-serve: sends the chosen files to the API in requests within the server's limits and
// shows what comes back. Every text from a file or the server is set as text, never as HTML.
"use strict";

const state = { files: [], limits: null, rows: [], skipped: [] };
const $ = (id) => document.getElementById(id);

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

const fixed = (value, digits = 1) => (value === null || value === undefined ? "" : Number(value).toFixed(digits));

function metricLine(summary) {
  for (const [key, name, unit] of [["test_mae", "test MAE", " years"], ["test_macro_auc", "test macro AUC", ""]]) {
    const metric = summary[key];
    if (metric) {
      const [low, high] = metric.ci95;
      return `${name} ${fixed(metric.value, 2)}${unit} (95% CI ${fixed(low, 2)}–${fixed(high, 2)}); ` +
        `baseline ${fixed(metric.baseline, 2)}${unit}`;
    }
  }
  return "no test metrics recorded";
}

function showModels(described) {
  const list = $("models");
  list.replaceChildren();
  for (const [role, summary] of [["Age", described.regressor], ["Age groups", described.classifier]]) {
    if (!summary) continue;
    list.append(element("dt", role));
    list.append(element("dd", `${summary.task} model (${summary.backbone}, ${summary.image_size} px), trained on ` +
      `${summary.trained_on}; ${metricLine(summary)}`));
  }
  if (described.notice) {
    $("notice").textContent = described.notice;
    $("notice").hidden = false;
  }
  $("saliency").disabled = !described.saliency;
  if (!described.saliency) $("saliency").parentElement.title = "needs the keras engine";
}

async function loadModel() {
  try {
    const response = await fetch("api/model");
    const described = await response.json();
    state.limits = described.limits;
    showModels(described);
  } catch (error) {
    $("models").replaceChildren(element("dt", "Model"), element("dd", `cannot reach the server: ${error}`));
  }
}

function choose(files) {
  state.files = Array.from(files);
  const size = state.files.reduce((sum, file) => sum + file.size, 0);
  $("chosen").textContent = state.files.length ?
    `${state.files.length} file(s), ${(size / 2 ** 20).toFixed(1)} MiB` : "";
  $("predict").disabled = state.files.length === 0;
}

// Requests of at most `files` files and `request_bytes` bytes; a file over `file_bytes` is skipped here.
function plan(files, limits) {
  const requests = [];
  const tooLarge = [];
  let current = [];
  let bytes = 0;
  for (const file of files) {
    if (file.size > limits.file_bytes) {
      tooLarge.push({ file: file.name, reason: `over the server's limit of ${limits.file_bytes / 2 ** 20} MiB per file` });
      continue;
    }
    if (current.length && (current.length >= limits.files || bytes + file.size > limits.request_bytes * 0.95)) {
      requests.push(current);
      current = [];
      bytes = 0;
    }
    current.push(file);
    bytes += file.size;
  }
  if (current.length) requests.push(current);
  return { requests, tooLarge };
}

async function send(files, saliency, tta) {
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  if (saliency) form.append("saliency", "1");
  if (tta >= 2) form.append("tta", String(tta));
  for (let attempt = 0; ; attempt++) {
    const response = await fetch("api/predict", { method: "POST", body: form });
    if (response.status === 503 && attempt < 20) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      continue;
    }
    const body = await response.json();
    if (!response.ok) return { predictions: [], skipped: files.map((f) => ({ file: f.name, reason: body.detail })) };
    return body;
  }
}

function groupCell(row) {
  const cell = element("td", null, "groups-column");
  const groups = Object.keys(row).filter((key) => key.startsWith("p_"));
  if (!groups.length) return cell;
  const grid = element("div", null, "groups");
  for (const key of groups) {
    const label = key.slice(2);
    const best = label === row.predicted_group;
    grid.append(element("span", label, best ? "best" : ""));
    const bar = element("div", null, "bar");
    bar.style.width = `${Math.round(row[key] * 100)}%`;
    grid.append(bar, element("span", fixed(row[key], 2), best ? "best" : ""));
  }
  cell.append(grid);
  return cell;
}

function resultRow(row) {
  const tr = element("tr");
  tr.dataset.file = row.file;
  const interval = row.interval_low === undefined ? "" :
    `${fixed(row.interval_low)}–${fixed(row.interval_high)} (${Math.round(row.interval_coverage * 100)}%)`;
  tr.append(element("td", row.file, "file"), element("td", `${fixed(row.predicted_age)} years`, "age"),
    element("td", interval), groupCell(row), element("td", fixed(row.tta_sd, 2), "tta-column"),
    element("td", fixed(row.header_age), "header-column"),
    element("td", row.age_gap === null || row.age_gap === undefined ? "" :
      `${row.age_gap > 0 ? "+" : ""}${fixed(row.age_gap)}`, "header-column"));
  const map = element("td", null, "map-column");
  if (row.saliency_png) {
    const image = element("img", null, "map");
    image.src = row.saliency_png;
    image.alt = `saliency of ${row.file}`;
    map.append(image);
  }
  tr.append(map);
  return tr;
}

// Columns that no row fills (no classifier, no DICOM header age, no overlays or spread asked for) are hidden.
function render() {
  $("output").hidden = false;
  const table = $("results");
  table.classList.toggle("no-groups", !state.rows.some((row) => row.predicted_group));
  table.classList.toggle("no-header", !state.rows.some((row) => row.header_age !== null && row.header_age !== undefined));
  table.classList.toggle("no-maps", !state.rows.some((row) => row.saliency_png));
  table.classList.toggle("no-tta", !state.rows.some((row) => row.tta_sd !== null && row.tta_sd !== undefined));
  $("results").tBodies[0].replaceChildren(...state.rows.map(resultRow));
  $("skipped").replaceChildren(...state.skipped.map((s) => element("li", `${s.file}: ${s.reason}`)));
  $("skipped-box").hidden = state.skipped.length === 0;
}

async function predict(event) {
  event.preventDefault();
  const { requests, tooLarge } = plan(state.files, state.limits);
  state.rows = [];
  state.skipped = tooLarge;
  $("predict").disabled = true;
  let done = 0;
  for (const files of requests) {
    $("status").textContent = `predicting ${done + 1}–${done + files.length} of ${state.files.length}…`;
    const body = await send(files, $("saliency").checked, Number($("tta").value));
    state.rows.push(...body.predictions);
    state.skipped.push(...body.skipped);
    done += files.length;
    render();
  }
  render();
  $("status").textContent = `${state.rows.length} predicted, ${state.skipped.length} skipped`;
  $("predict").disabled = false;
}

function csvCell(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function download() {
  const columns = [];
  for (const row of state.rows) {
    for (const key of Object.keys(row)) if (key !== "saliency_png" && !columns.includes(key)) columns.push(key);
  }
  const lines = [columns.join(",")].concat(state.rows.map((row) => columns.map((c) => csvCell(row[c])).join(",")));
  const link = element("a");
  link.href = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }));
  link.download = "cxr-age-predictions.csv";
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

function listen() {
  const drop = $("drop");
  $("files").addEventListener("change", (event) => choose(event.target.files));
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (event) => choose(event.dataTransfer.files));
  $("upload").addEventListener("submit", predict);
  $("download").addEventListener("click", download);
}

listen();
loadModel();
