// The web page of `frs serve`: plain DOM code, no framework and no CDN (the CSP allows only this origin).
// Model output is shown with textContent only, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function loadDemos() {
  try {
    const response = await fetch("/v1/demos");
    const demos = await response.json();
    for (const demo of demos) {
      const option = document.createElement("option");
      option.value = demo.name;
      option.textContent = `${demo.name} (${demo.scene_type.replace("_", " ")})`;
      option.dataset.query = demo.suggested_query;
      $("demo").appendChild(option);
    }
  } catch (err) {
    setStatus(`could not list demo scenes: ${err}`, true);
  }
}

function onDemoChange() {
  const option = $("demo").selectedOptions[0];
  if (option && option.value) {
    $("file").value = "";
    $("query").placeholder = `e.g. ${option.dataset.query}`;
    $("preview").src = `/v1/demos/${encodeURIComponent(option.value)}.png`;
    $("result").hidden = true;  // a new scene: the old answer no longer applies
    $("preview-section").hidden = false;
  } else {
    $("preview-section").hidden = true;
  }
}

// Split a rollout into its <reason>/<plan>/<results>/<answer> blocks for display.
function blocks(text) {
  const out = [];
  const pattern = /<(reason|plan|results|answer)>([\s\S]*?)<\/\1>/g;
  let match;
  while ((match = pattern.exec(text)) !== null) out.push({ tag: match[1], body: match[2].trim() });
  return out;
}

function showChain(result) {
  const chain = $("chain");
  chain.replaceChildren();
  for (const block of blocks(result.reasoning)) {
    const item = document.createElement("li");
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = block.tag === "plan" ? "tool calls" : block.tag === "results" ? "tool results" : block.tag;
    const body = document.createElement(block.tag === "reason" ? "span" : "code");
    body.textContent = block.body;
    item.append(tag, ": ", body);
    chain.appendChild(item);
  }
  if (!chain.children.length) {
    const item = document.createElement("li");
    item.textContent = "(the reasoner wrote no protocol blocks)";
    chain.appendChild(item);
  }
  $("reasoning").textContent = result.reasoning;
  $("failures").textContent = result.failures.length
    ? "Problems: " + result.failures.map((f) => `${f.code} (${f.message})`).join("; ")
    : "";
}

function showObjects(scene, answerIds) {
  const body = $("objects").querySelector("tbody");
  body.replaceChildren();
  const chosen = new Set(answerIds);
  for (const row of scene.objects) {
    const tr = document.createElement("tr");
    if (chosen.has(row.id)) tr.className = "selected";
    const depth = row.depth === null ? "-" : row.depth.toFixed(2);
    for (const value of [row.id, row.label, row.score.toFixed(2), row.box.join(", "), depth, row.frames]) {
      const td = document.createElement("td");
      td.textContent = String(value);
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

async function onSubmit(event) {
  event.preventDefault();
  const query = $("query").value.trim();
  const file = $("file").files[0];
  const demo = $("demo").value;
  if (!query) return setStatus("type a query first", true);
  if (!file && !demo) return setStatus("pick a demo scene or choose a file", true);
  const form = new FormData();
  form.append("query", query);
  form.append("overlay", "true");
  if (file) form.append("file", file);
  else form.append("demo", demo);
  $("run").disabled = true;
  setStatus("thinking…");
  const started = performance.now();
  try {
    const response = await fetch("/v1/segment", { method: "POST", body: form });
    const payload = await response.json();
    if (!response.ok) {
      const message = payload.error ? payload.error.message : response.statusText;
      const retry = response.headers.get("Retry-After");
      setStatus(`error ${response.status}: ${message}${retry ? ` (retry in ${retry} s)` : ""}`, true);
      return;
    }
    const result = payload.results[0];
    $("overlay").src = `data:image/png;base64,${result.overlay_png}`;
    const ids = result.answer.object_ids;
    $("answer").textContent = ids.length ? ids.map((id) => {
      const row = payload.scene.objects.find((o) => o.id === id);
      return row ? `${id} (${row.label})` : String(id);
    }).join(", ") : "no object";
    $("timing").textContent = `· reasoning ${result.timing.reasoning_s.toFixed(2)} s, perception `
      + `${result.timing.perception_s.toFixed(2)} s${payload.scene.cached ? " (cached scene)" : ""}`;
    showChain(result);
    showObjects(payload.scene, ids);
    $("result").hidden = false;
    $("preview-section").hidden = true;
    setStatus(`done in ${((performance.now() - started) / 1000).toFixed(2)} s · request ${payload.request_id}`);
  } catch (err) {
    setStatus(`request failed: ${err}`, true);
  } finally {
    $("run").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  loadDemos();
  $("demo").addEventListener("change", onDemoChange);
  $("file").addEventListener("change", () => { if ($("file").files.length) { $("demo").value = ""; onDemoChange(); } });
  $("segment-form").addEventListener("submit", onSubmit);
});
