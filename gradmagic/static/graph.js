// gradmagic — interactive computation graph (anywidget front end).
//
// Draws the layout computed in Python (gradmagic.viz.layout) as SVG, lets the learner
// pan/zoom, select nodes, replay the backward pass step by step and read each leaf's
// gradient history. When the cell failed or surprised, its diagnoses come first. All DOM
// is built with createElement/textContent: user strings (variable names, source lines,
// reprs) are never parsed as markup.

/**
 * The anywidget model (or the standalone page's shim with the same methods).
 * @typedef {Object} Model
 * @property {(name: string) => any} get
 * @property {(name: string, value: any) => void} set
 * @property {(event: string, callback: Function) => void} on
 * @property {(event: string, callback: Function) => void} off
 * @property {() => void} save_changes
 */

/**
 * A tensor value as the report dict holds it.
 * @typedef {{shape: number[], dtype: string, numel: number, data: any, head: any[],
 *            min: any, max: any, mean: any}} Value
 */

const SVG_NS = "http://www.w3.org/2000/svg";
// box metrics of gradmagic.viz.labels (the layout sizes every box for these)
const LINE_H = 15;
const CHAR_W = 7.2;
const PAD_X = 10;
const PAD_Y = 7;
const BASELINE = 11.5;
const LABEL_CHAR_W = 6.7; // 11 px monospace of the edge labels
const STATUS_MARK = { agree: "✓", differ: "✗", unchecked: "?", disabled: "⊘" };
const STATUS_TEXT = {
  agree: "agrees with PyTorch",
  differ: "differs from PyTorch",
  unchecked: "not checked",
  disabled: "twin disabled",
};
const KIND_TEXT = { leaf: "leaf", op: "op", opaque: "opaque op", constant: "constant" };
const EVENT_TEXT = {
  created: "created",
  backward: "backward",
  zero_: "zero_()",
  set_none: "= None",
  set: "set",
  update: "update",
};
let instanceCounter = 0;

// ---------------------------------------------------------------- DOM helpers

/** HTML element; string/number children become text nodes. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  appendAll(el, children);
  return el;
}

/** SVG element; string/number children become text nodes. */
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  appendAll(el, children);
  return el;
}

// Characters shown as escapes, never applied: controls, bidi overrides ("Trojan Source"),
// zero-width characters, Unicode tags and lone surrogates. The same set as
// gradmagic.viz.escape.clean_text, so every view shows a hostile name the same way.
const INVISIBLE = new RegExp(
  "[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069" +
    "\\u180e\\u200b\\u2060-\\u2064\\u{e0000}-\\u{e007f}\\u2028\\u2029\\ufeff\\ufffe\\uffff]|[\\ud800-\\udfff]",
  "gu",
);
/** Attributes whose value the browser shows (tooltips, screen readers). */
const SHOWN_ATTRS = new Set(["title", "aria-label"]);

/**
 * `text` with invisible and direction-changing characters written as escapes (`\\u202e`);
 * newlines and tabs stay. Text reaches the DOM only through textContent/setAttribute.
 * @param {any} text
 * @returns {string}
 */
export function cleanText(text) {
  return String(text).replace(/\r\n/g, "\n").replace(INVISIBLE, (ch) => {
    const code = ch.codePointAt(0);
    if (code < 0x100) return `\\x${code.toString(16).padStart(2, "0")}`;
    return code < 0x10000 ? `\\u${code.toString(16).padStart(4, "0")}` : `\\U${code.toString(16).padStart(8, "0")}`;
  });
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.setAttribute("class", v);
    else if (k === "text") el.textContent = cleanText(v);
    else if (SHOWN_ATTRS.has(k)) el.setAttribute(k, cleanText(v));
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

function appendAll(el, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(cleanText(c)));
  }
}

// ---------------------------------------------------------------- formatting

function isFloatType(dtype) {
  return !dtype || /float|half|double|complex/.test(dtype);
}

/** PyTorch's number style for one tensor: "bool", "int", "integral" (4.), "fixed" (0.5000) or "sci". */
function numberStyle(values, dtype) {
  const dt = dtype || "";
  if (dt === "bool" || (values.length && values.every((v) => typeof v === "boolean"))) return "bool";
  if (/^u?int/.test(dt)) return "int";
  const finite = values.filter((v) => typeof v === "number" && Number.isFinite(v)).map(Math.abs);
  if (!finite.length) return "integral";
  const big = Math.max(...finite);
  const nonzero = finite.filter((v) => v > 0);
  const small = nonzero.length ? Math.min(...nonzero) : 0;
  if (finite.every((v) => Number.isInteger(v))) return big >= 1e8 ? "sci" : "integral";
  if (big >= 1e8 || (small && (small < 1e-4 || big / small > 1e3))) return "sci";
  return "fixed";
}

/** One element as PyTorch prints it in `style`: `4.`, `0.5000`, `1.0000e-05`, `nan`, `True`. */
export function fmtNum(v, style = "fixed") {
  if (v === null || v === undefined) return "–";
  if (typeof v === "string") return v; // "nan", "inf", "-inf", complex "1+2j"
  if (typeof v === "boolean" || style === "bool") return v ? "True" : "False";
  if (style === "int") return String(Math.trunc(v));
  if (style === "integral") return `${Math.trunc(v)}.`;
  if (style === "sci") return v.toExponential(4).replace(/e([+-])(\d)$/, "e$10$2");
  return v.toFixed(4);
}

function flat(data) {
  return Array.isArray(data) ? data.flat(Infinity) : [data];
}

function fmtNested(data, style, depth = 0) {
  if (!Array.isArray(data)) return fmtNum(data, style);
  const nested = data.length > 0 && Array.isArray(data[0]);
  const parts = data.map((d) => fmtNested(d, style, depth + 1));
  return "[" + parts.join(nested ? ",\n" + " ".repeat(depth + 1) : ", ") + "]";
}

export function fmtShape(shape) {
  if (!shape) return "?";
  return shape.length === 0 ? "scalar" : "[" + shape.join(", ") + "]";
}

/** Normalise a Leaf `grad` (nested lists or a bare number) to a Value dict. */
function asValue(v, dtype = "float32") {
  if (v === null || v === undefined || (typeof v === "object" && !Array.isArray(v))) return v;
  const items = flat(v);
  const shape = [];
  for (let d = v; Array.isArray(d); d = d[0]) shape.push(d.length);
  return { shape, dtype, numel: items.length, data: v, head: items.slice(0, 8), min: null, max: null, mean: null };
}

/** A Value, in full when its data was kept, else summarised (shape, range, first items). */
export function fmtValue(value, dtype) {
  value = asValue(value, dtype);
  if (value === null || value === undefined) return "None";
  const hasData = value.data !== null && value.data !== undefined;
  const items = hasData ? flat(value.data) : value.head || [];
  const extremes = hasData ? [] : [value.min, value.max].filter((x) => x !== null && x !== undefined);
  const style = numberStyle(items.concat(extremes), value.dtype);
  if (hasData) return fmtNested(value.data, style);
  const head = items.map((v) => fmtNum(v, style)).join(", ");
  const stats = value.min === null || value.min === undefined ? "" :
    ` · min ${fmtNum(value.min, style)} · max ${fmtNum(value.max, style)} · mean ${fmtNum(value.mean, style === "integral" ? "fixed" : style)}`;
  return `${fmtShape(value.shape)} (${value.numel} values)${stats}\nfirst: [${head}, …]`;
}

/** Short one-line preview: the whole tensor when it fits in `maxChars`, else its first items. */
export function previewValue(value, maxChars = 28, dtype) {
  value = asValue(value, dtype);
  if (value === null || value === undefined) return "None";
  const hasData = value.data !== null && value.data !== undefined;
  const items = hasData ? flat(value.data) : value.head || [];
  const style = numberStyle(items, value.dtype);
  if (!value.shape || value.shape.length === 0) return items.length ? fmtNum(items[0], style) : "…";
  if (hasData) {
    const full = fmtNested(value.data, style).replace(/\n\s*/g, " ");
    if (full.length <= maxChars) return full;
  }
  const ndim = value.shape.length;
  const shown = [];
  for (const x of items) {
    const text = "[".repeat(ndim) + shown.concat(fmtNum(x, style)).join(", ") + ", …]";
    if (shown.length && text.length > maxChars) break;
    shown.push(fmtNum(x, style));
  }
  const complete = shown.length >= value.numel;
  return "[".repeat(ndim) + shown.join(", ") + (complete ? "" : ", …") + "]".repeat(ndim);
}

/** True for None/absent or an all-zero Value: adding to it is not "accumulating". */
function isZero(value) {
  if (value === null || value === undefined) return true;
  if (value.data !== null && value.data !== undefined) return flat(value.data).every((v) => v === 0 || v === false);
  return value.min === 0 && value.max === 0;
}

function fmtBytes(n) {
  if (n === null || n === undefined) return "?";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function fmtErr(e) {
  if (e === null || e === undefined) return "–";
  if (typeof e === "string" || e === 0) return String(e);
  return Math.abs(e) < 1e-3 || Math.abs(e) >= 1e4 ? e.toExponential(1) : String(Number(e.toPrecision(4)));
}

function truncate(text, maxChars) {
  const t = String(text);
  return t.length <= maxChars ? t : t.slice(0, Math.max(1, maxChars - 1)) + "…";
}

/** "cell 3, line 2" with the parts that are known. */
function fmtWhere(src) {
  if (!src) return "";
  const parts = [];
  if (src.cell !== null && src.cell !== undefined) parts.push(`cell ${src.cell}`);
  if (src.line !== null && src.line !== undefined) parts.push(`line ${src.line}`);
  return parts.join(", ");
}

/** Box text when the payload carries no `labels` (same roles as gradmagic.viz.labels). */
function fallbackLines(node) {
  const title = node.name || node.label || node.op || node.id;
  const lines = [["title", title]];
  const kind = node.kind === "op" ? node.label || node.op : KIND_TEXT[node.kind] || node.kind;
  if (kind && kind !== title) lines.push(["kind", kind]);
  lines.push(["shape", `${fmtShape(node.shape)} ${node.dtype || ""}`.trim()]);
  if (node.value) lines.push(["value", previewValue(node.value)]);
  if (node.grad) lines.push(["grad", "grad " + previewValue(node.grad, 25)]);
  return lines;
}

function nodeTitle(node) {
  return node.name || node.label || node.op || node.id;
}

// ---------------------------------------------------------------- derived data

/** Index the report once per graph change. */
function indexGraph(graph) {
  const report = graph.report || {};
  const layout = graph.layout || {};
  const nodes = new Map((report.nodes || []).map((n) => [n.id, n]));
  const groupOf = new Map();
  for (const g of layout.groups || []) {
    if (g.folded) for (const m of g.members || []) groupOf.set(m, g.id);
  }
  const leaves = new Map((report.leaves || []).map((l) => [l.id, l]));
  const labels = graph.labels || {};
  return { report, layout, labels, nodes, groupOf, leaves, calls: report.backward_calls || [] };
}

/** Resolve a node id or a variable name to a node id ("" when unknown). */
function resolveSelected(idx, key) {
  if (!key) return "";
  if (idx.nodes.has(key)) return key;
  const nodes = [...idx.nodes.values()].reverse();
  const hit = nodes.find((n) => n.name === key) || nodes.find((n) => (n.aliases || []).includes(key));
  return hit ? hit.id : "";
}

/** Sum of the contributions that reached `nodeId` in steps[0..k). */
function incomingContributions(idx, steps, k, nodeId) {
  const out = [];
  for (let i = 0; i < k; i++) {
    const st = steps[i];
    if (st.kind !== "node") continue;
    for (const c of st.contributions || []) {
      if (c.to === nodeId) out.push({ from: st.node, input: c.input, value: c.value, formula: c.formula });
    }
  }
  return out;
}

// ---------------------------------------------------------------- diagnoses (why it failed)
// The report's `diagnoses` (most important first) as a panel above everything else, and
// their nodes marked in the graph (`data-diagnosis="<kind>"`). Same wording as the static
// views (gradmagic.viz.facts): an error is headed "Why it failed", a warning by its title.

/**
 * Why the cell failed or surprised (the report dict's `diagnoses`, docs/contract.md).
 * @typedef {{kind: string, title: string, message: string, fix: string, tensor: ?string,
 *            lines: {cell: ?number, line: ?number, code: ?string, role: string}[],
 *            nodes: string[], severity: ("error"|"warning")}} Diagnosis
 */

const FAILED_HEADING = "Why it failed";
const SEVERITY_MARK = { error: "✗", warning: "⚠" };

function severityOf(diagnosis) {
  return diagnosis.severity === "warning" ? "warning" : "error";
}

/** "Why it failed" for an error; a warning's heading is its own title. */
function diagnosisHeading(diagnosis) {
  return severityOf(diagnosis) === "error" ? FAILED_HEADING : diagnosis.title || "";
}

/** "line 2"; "cell 3, line 2" when the line is in another cell than the report's. */
function diagnosisWhere(line, cell) {
  const other = line.cell !== null && line.cell !== undefined && line.cell !== cell;
  return fmtWhere({ cell: other ? line.cell : null, line: line.line }) || fmtWhere(line) || "—";
}

/** The node a line of a diagnosis points at: one of its nodes made on that line, else its first. */
function nodeForLine(diagnosis, line, nodes) {
  const ids = (diagnosis.nodes || []).filter((id) => nodes.has(id));
  const onLine = ids.find((id) => {
    const src = nodes.get(id)?.source;
    return src && line && src.line === line.line && (src.cell ?? null) === (line.cell ?? null);
  });
  return onLine || ids[0] || "";
}

/** Make `el` act as a button: click, Enter or Space call `onPress`. */
function pressable(el, onPress) {
  el.setAttribute("tabindex", "0");
  el.setAttribute("role", "button");
  el.addEventListener("click", onPress);
  el.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      onPress();
    }
  });
  return el;
}

/**
 * One `.gradmagic-diagnosis` block: heading, title, message, the lines involved, the fix.
 * @param {Diagnosis} diagnosis
 * @param {number|null} cell the report's cell number
 * @param {Map<string, Object>} nodes the report's nodes by id
 * @param {(id: string) => void} onShow selects a node in the graph
 * @returns {HTMLElement}
 */
function diagnosisBlock(diagnosis, cell, nodes, onShow) {
  const severity = severityOf(diagnosis);
  const heading = diagnosisHeading(diagnosis);
  const block = h("div", {
    class: `gradmagic-diagnosis gradmagic-diagnosis-${severity}`,
    "data-diagnosis": diagnosis.kind || "", role: severity === "error" ? "alert" : "note",
  }, h("div", { class: "gradmagic-diagnosis-heading" }, `${SEVERITY_MARK[severity]} ${heading}`));
  const first = nodeForLine(diagnosis, null, nodes);
  if (diagnosis.title && diagnosis.title !== heading) {
    block.appendChild(h("div", { class: "gradmagic-diagnosis-title" }, diagnosis.title));
  }
  if (diagnosis.message) block.appendChild(h("p", { class: "gradmagic-diagnosis-message" }, diagnosis.message));
  const lines = diagnosis.lines || [];
  if (lines.length) {
    block.appendChild(h("ol", { class: "gradmagic-diagnosis-lines" }, lines.map((line) => {
      const item = h("li", { class: "gradmagic-diagnosis-line", "data-line": line.line ?? "" },
        h("span", { class: "gradmagic-diagnosis-where" }, diagnosisWhere(line, cell)),
        h("span", { class: "gradmagic-diagnosis-role" }, line.role || ""),
        h("code", {}, line.code || ""));
      const id = nodeForLine(diagnosis, line, nodes);
      if (id) pressable(item, () => onShow(id)).setAttribute("title", "show in the graph");
      return item;
    })));
  }
  if (diagnosis.fix) {
    block.appendChild(h("p", { class: "gradmagic-diagnosis-fix" }, h("strong", {}, "Fix:"), ` ${diagnosis.fix}`));
  }
  if (first) {
    const show = h("button", { type: "button", class: "gradmagic-btn gradmagic-diagnosis-show" }, "show in the graph");
    show.addEventListener("click", () => onShow(first));
    block.appendChild(show);
  }
  return block;
}

/**
 * The panel of every diagnosis of `report`, most important first; null when it has none.
 * @param {Object} report the report dict
 * @param {Map<string, Object>} nodes the report's nodes by id
 * @param {(id: string) => void} onShow selects a node in the graph
 * @returns {HTMLElement|null}
 */
function diagnosisPanel(report, nodes, onShow) {
  const diagnoses = report.diagnoses || [];
  if (!diagnoses.length) return null;
  const cell = report.cell ? report.cell.number ?? null : null;
  return h("div", { class: "gradmagic-diagnoses" }, diagnoses.map((d) => diagnosisBlock(d, cell, nodes, onShow)));
}

/** Node id -> the first (most important) diagnosis naming it. */
function diagnosedNodes(report) {
  const marks = new Map();
  for (const d of report.diagnoses || []) {
    for (const id of d.nodes || []) if (!marks.has(id)) marks.set(id, d);
  }
  return marks;
}

/**
 * Mark the drawn boxes of diagnosed nodes (a folded group stands for its members): the
 * `data-diagnosis` hook, a severity class and a dashed ring behind the box.
 * @param {ReturnType<typeof indexGraph>} idx
 * @param {Map<string, Element>} nodeEls
 * @param {Map<string, Element>} groupEls
 */
function markDiagnosedNodes(idx, nodeEls, groupEls) {
  for (const [id, d] of diagnosedNodes(idx.report)) {
    const gid = idx.groupOf.get(id);
    const el = nodeEls.get(id) || groupEls.get(gid);
    if (!el || el.hasAttribute("data-diagnosis")) continue;
    const box = nodeEls.has(id) ? idx.layout.nodes[id] : (idx.layout.groups || []).find((g) => g.id === gid);
    el.setAttribute("data-diagnosis", d.kind || "");
    el.classList.add("gradmagic-diagnosed", `gradmagic-diagnosed-${severityOf(d)}`);
    el.insertBefore(s("rect", {
      class: "gradmagic-diagnosis-ring", x: -5, y: -5, width: (box?.w || 0) + 10, height: (box?.h || 0) + 10, rx: 10,
    }), el.firstChild);
  }
}

// ---------------------------------------------------------------- module boxes (issue 13)

/**
 * Open or close group `id` (a folded loop or a module call) in the synced `expanded` list.
 * @param {Model} model
 * @param {string} id
 * @param {boolean} open
 */
function setExpanded(model, id, open) {
  const cur = new Set(model.get("expanded") || []);
  if (open) cur.add(id);
  else cur.delete(id);
  model.set("expanded", [...cur]);
  model.save_changes();
}

/**
 * One module call: a collapsed box (path · signature, shapes in → out, the gradient of its
 * parameters) or, when open, a labelled frame behind its nodes. Click or Enter toggles it.
 * @param {Object} group a layout group with `kind: "module"`
 * @param {Array<[string, string]>|undefined} lines the box text (viz.labels.module_lines)
 * @param {() => void} onToggle
 * @returns {SVGGElement}
 */
function drawModuleBox(group, lines, onToggle) {
  const folded = !!group.folded;
  const label = cleanText(group.label || group.module || group.id);
  const g = s("g", {
    class: `gradmagic-group gradmagic-module ${folded ? "gradmagic-folded" : "gradmagic-unfolded"}`,
    "data-group-id": group.id, "data-module": cleanText(group.module || ""),
    "data-module-class": cleanText(group.type || ""), "data-depth": group.depth || 0,
    "aria-label": `${label} (${(group.members || []).length} nodes), ${folded ? "collapsed: press Enter to open" : "open: press Enter to collapse"}`,
    transform: `translate(${group.x},${group.y})`,
  });
  g.appendChild(s("rect", { class: "gradmagic-group-box gradmagic-module-box", width: group.w, height: group.h, rx: 8 }));
  if (folded) {
    const maxChars = Math.max(4, Math.floor((group.w - 2 * PAD_X) / CHAR_W));
    const room = Math.max(1, Math.floor((group.h - PAD_Y) / LINE_H));
    (lines || [["title", label]]).slice(0, room).forEach(([role, text], i) => {
      g.appendChild(s("text", { class: `gradmagic-line-${role}`, x: group.w / 2, y: PAD_Y + i * LINE_H + BASELINE, "text-anchor": "middle" },
        truncate(text, role === "title" ? maxChars - 2 : maxChars)));
    });
    g.appendChild(s("text", { class: "gradmagic-mark", x: group.w - 5, y: PAD_Y + BASELINE, "text-anchor": "end" }, "⊞"));
    pressable(g, onToggle);
  } else {
    const maxChars = Math.max(4, Math.floor((group.w - 12) / LABEL_CHAR_W));
    pressable(g.appendChild(s("text", { class: "gradmagic-group-fold gradmagic-module-title", x: 6, y: 12 },
      truncate(`⊟ ${label}`, maxChars))), onToggle);
  }
  g.appendChild(s("title", {}, (lines || []).map(([, text]) => text).join("\n") || label));
  return g;
}

/**
 * The depth control (as torchview's `depth`): depth d opens every module box of depth < d,
 * "all" opens them all; loop groups keep their state. Null when the graph has no modules.
 * @param {Object} layout the layout dict (`levels`: module group ids per depth)
 * @param {Model} model
 * @returns {HTMLElement|null}
 */
function depthControl(layout, model) {
  const levels = layout.levels || [];
  if (!levels.length) return null;
  const moduleIds = new Set(levels.flat());
  const open = new Set(model.get("expanded") || []);
  let current = "";
  for (let d = 0; d <= levels.length; d++) {
    if (levels.every((ids, k) => ids.every((id) => open.has(id) === k < d))) current = String(d);
  }
  const select = h("select", { class: "gradmagic-depth", "aria-label": "module depth: how deep module boxes open" });
  if (current === "") select.appendChild(h("option", { value: "", selected: true, disabled: true }, "custom"));
  for (let d = 0; d <= levels.length; d++) {
    const value = String(d);
    select.appendChild(h("option", { value, selected: value === current }, d === levels.length ? "all" : value));
  }
  select.addEventListener("change", () => {
    const d = Number(select.value);
    const keep = [...open].filter((id) => !moduleIds.has(id)); // loop groups
    model.set("expanded", [...keep, ...levels.slice(0, d).flat()]);
    model.save_changes();
  });
  return h("label", { class: "gradmagic-depth-control", title: "module depth: 0 = the outermost modules collapsed, all = every module open" },
    "depth ", select);
}

/**
 * The step ◀/▶ go to: a collapsed module box is stepped over as one step (▶ lands on its
 * last step, ◀ leaves it for the step before its first); an open box is stepped into.
 * @param {Array<Object>} steps the backward call's steps
 * @param {number} k the current step (-1 = not started)
 * @param {number} dir 1 or -1
 * @param {{groupOf: Map<string, string>, layout: Object}} idx
 * @returns {number}
 */
function stepOver(steps, k, dir, idx) {
  const boxes = new Set((idx.layout.groups || []).filter((g) => g.kind === "module" && g.folded).map((g) => g.id));
  const boxOf = (i) => (i >= 0 && i < steps.length && boxes.has(idx.groupOf.get(steps[i].node)) ? idx.groupOf.get(steps[i].node) : null);
  let i = k;
  if (dir < 0) {
    const here = boxOf(i);
    while (here && boxOf(i - 1) === here) i--; // to the first step of the box, then before it
    return i - 1;
  }
  const box = boxOf(i + 1);
  i += 1;
  while (box && boxOf(i + 1) === box) i++;
  return i;
}

// ---------------------------------------------------------------- gradient flow

const FLOW_W = 560;
const FLOW_H = 220;
const FLOW_M = { left: 56, right: 150, top: 12, bottom: 34 };

/**
 * The gradient-flow panel: hints, a chart of each layer's gradient norm per backward call
 * (log scale; bars when there was one call) and a table of the last values. `flow` is
 * `graph.flow` (gradmagic.viz.flowchart.flow_payload: the static SVG's own facts).
 * @param {?{title: string, sub: string, calls: number, decades: number[], colours: string[],
 *   hints: Array<{kind: string, title: string, text: string}>,
 *   layers: Array<{name: string, type: string, kind: string, calls: number[], norm: Array<?number>,
 *   last_norm: string, last_mean: string, last_max: string, trend: string}>}} flow
 * @returns {HTMLElement|null}
 */
function gradFlowPanel(flow) {
  if (!flow || !(flow.layers || []).length) return null;
  const [lo, hi] = flow.decades;
  const pw = FLOW_W - FLOW_M.left - FLOW_M.right;
  const ph = FLOW_H - FLOW_M.top - FLOW_M.bottom;
  const yOf = (v) => FLOW_M.top + ph * (1 - (Math.log10(v) - lo) / (hi - lo));
  const ok = (v) => v !== null && v !== undefined && Number.isFinite(v) && v > 0;
  const colour = (i) => flow.colours[i % flow.colours.length];
  const bars = flow.calls <= 1;
  const chart = s("svg", {
    class: "gradmagic-flow", width: FLOW_W, height: FLOW_H, viewBox: `0 0 ${FLOW_W} ${FLOW_H}`,
    role: "img", "aria-label": "gradient norm per layer",
  });
  const step = Math.max(1, Math.ceil((hi - lo) / 6));
  for (let d = lo; d <= hi; d += step) {
    const y = yOf(10 ** d);
    chart.append(s("line", { class: "gradmagic-flow-grid", x1: FLOW_M.left, x2: FLOW_M.left + pw, y1: y, y2: y }),
      s("text", { class: "gradmagic-flow-tick", x: FLOW_M.left - 4, y: y + 4, "text-anchor": "end" }, `1e${d}`));
  }
  chart.append(s("text", { class: "gradmagic-flow-tick", x: FLOW_M.left + pw / 2, y: FLOW_H - 4, "text-anchor": "middle" },
    bars ? "layer" : "backward call"),
  s("text", { class: "gradmagic-flow-tick", x: 12, y: FLOW_M.top + ph / 2, "text-anchor": "middle",
    transform: `rotate(-90 12 ${FLOW_M.top + ph / 2})` }, "‖grad‖"));
  const base = FLOW_M.top + ph;
  if (bars) {
    const slot = pw / flow.layers.length;
    flow.layers.forEach((lay, i) => {
      const v = lay.norm[lay.norm.length - 1];
      const x = FLOW_M.left + slot * i + slot * 0.15;
      const y = ok(v) ? yOf(v) : base - 1;
      chart.append(
        s("rect", { class: "gradmagic-flow-bar", "data-layer": lay.name, x, y, width: slot * 0.7,
          height: Math.max(0.5, base - y), fill: colour(i) }, s("title", {}, `${lay.name}: ‖grad‖ ${lay.last_norm}`)),
        s("text", { class: "gradmagic-flow-label", x: x + slot * 0.35, y: base + 13, "text-anchor": "middle" },
          truncate(lay.name, Math.max(4, Math.floor(slot / 6.5)))));
    });
  } else {
    const xOf = (c) => FLOW_M.left + (pw * c) / Math.max(1, flow.calls - 1);
    const ticks = flow.calls <= 10 ? [...Array(flow.calls).keys()] : [0, Math.floor(flow.calls / 2), flow.calls - 1];
    for (const c of ticks) {
      chart.append(s("text", { class: "gradmagic-flow-tick", x: xOf(c), y: base + 13, "text-anchor": "middle" }, String(c)));
    }
    flow.layers.forEach((lay, i) => {
      const segs = [[]];
      lay.calls.forEach((c, k) => {
        if (ok(lay.norm[k])) segs[segs.length - 1].push(`${xOf(c).toFixed(1)},${yOf(lay.norm[k]).toFixed(1)}`);
        else if (segs[segs.length - 1].length) segs.push([]); // a gap: zero or non-finite
      });
      const g = s("g", { class: "gradmagic-flow-line", "data-layer": lay.name },
        s("title", {}, `${lay.name}: last ‖grad‖ ${lay.last_norm}`));
      for (const seg of segs.filter((p) => p.length)) {
        const [cx, cy] = seg[0].split(",");
        g.append(seg.length > 1
          ? s("polyline", { points: seg.join(" "), fill: "none", stroke: colour(i), "stroke-width": 1.5 })
          : s("circle", { cx, cy, r: 2.5, fill: colour(i) }));
      }
      const ly = FLOW_M.top + 6 + 15 * i;
      chart.append(g,
        s("line", { x1: FLOW_W - FLOW_M.right + 10, x2: FLOW_W - FLOW_M.right + 26, y1: ly, y2: ly, stroke: colour(i), "stroke-width": 2 }),
        s("text", { class: "gradmagic-flow-label", x: FLOW_W - FLOW_M.right + 30, y: ly + 4 }, truncate(lay.name, 17)));
    });
  }
  const rows = flow.layers.map((lay) => h("tr", { "data-layer": lay.name },
    h("td", {}, h("code", {}, lay.name)), h("td", {}, lay.type || lay.kind), h("td", {}, lay.last_norm),
    h("td", {}, lay.last_mean), h("td", {}, lay.last_max), h("td", {}, lay.trend)));
  const table = h("table", { class: "gradmagic-flow-table" },
    h("thead", {}, h("tr", {}, ["layer", "kind", "‖grad‖ (last call)", "mean |g|", "max |g|", "trend"].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows));
  const hints = (flow.hints || []).map((hint) => h("p", { class: "gradmagic-warn gradmagic-flow-hint", "data-hint": hint.kind },
    h("strong", {}, `⚠ ${hint.title}. `), hint.text));
  const acts = (flow.activations || []).length ? [h("h4", {}, flow.activations_title),
    h("table", { class: "gradmagic-flow-acts" },
      h("thead", {}, h("tr", {}, ["module", "kind", "shape", "mean", "std", "zeros"].map((t) => h("th", {}, t)))),
      h("tbody", {}, flow.activations.map((a) => h("tr", { "data-module": a.module },
        h("td", {}, h("code", {}, a.module)), h("td", {}, a.type), h("td", {}, a.shape),
        h("td", {}, a.mean), h("td", {}, a.std), h("td", {}, a.zeros)))))] : [];
  return h("div", { class: "gradmagic-flow-panel" },
    h("h4", {}, `${flow.title} `, h("span", { class: "gradmagic-hint" }, `— ${flow.sub}`)), hints, chart, table, acts);
}

// ---------------------------------------------------------------- render

/**
 * Render the widget into `el`.
 * @param {{model: Model, el: HTMLElement}} ctx
 * @returns {() => void} cleanup
 */
function render({ model, el }) {
  // unique per view even when the module is evaluated once per widget (marker ids are global)
  const uid = `gm${++instanceCounter}-${Math.random().toString(36).slice(2, 8)}`;
  const root = h("div", { class: "gradmagic-widget", "data-gradmagic": "widget" });
  el.appendChild(root);

  let idx = indexGraph(model.get("graph") || {});
  let diagnoses = null; // the diagnosis panel above the header, when the report has any
  let flowPanel = null; // the gradient-flow panel (gradFlowPanel), when the report has one
  const view = { x: 0, y: 0, k: 1, fitted: false };
  const nodeEls = new Map(); // id -> <g>
  const groupEls = new Map(); // group id -> <g>
  const edgeIndex = new Map(); // "source|target|input" and "source|target" -> {el, points}
  const nodeBadges = new Map(); // node id -> its step-number <text>

  // --- skeleton
  const header = h("div", { class: "gradmagic-header" });
  const toolbar = h("div", { class: "gradmagic-toolbar", role: "toolbar", "aria-label": "graph view" });
  const graphBox = h("div", { class: "gradmagic-graph", tabindex: "-1" });
  const svg = s("svg", { class: "gradmagic-svg", role: "group", "aria-label": "computation graph" });
  const defs = s("defs");
  const viewport = s("g", { class: "gradmagic-viewport" });
  const edgeLayer = s("g", { class: "gradmagic-edges" });
  const groupLayer = s("g", { class: "gradmagic-groups" });
  const nodeLayer = s("g", { class: "gradmagic-nodes" });
  const labelLayer = s("g", { class: "gradmagic-edge-labels" });
  viewport.append(groupLayer, edgeLayer, nodeLayer, labelLayer);
  svg.append(defs, viewport);
  const emptyNote = h("div", { class: "gradmagic-empty-graph" }, "No tensor operations were recorded in this cell.");
  graphBox.append(svg, emptyNote);
  const stepBox = h("div", { class: "gradmagic-step", role: "group", "aria-label": "step through backward" });
  const details = h("div", { class: "gradmagic-details", "aria-live": "polite" });
  const narration = h("div", { class: "gradmagic-narration", "aria-live": "polite" });
  const side = h("div", { class: "gradmagic-side" }, narration, details);
  const main = h("div", { class: "gradmagic-main" }, graphBox, side);
  const accum = h("div", { class: "gradmagic-accum" });
  root.append(header, toolbar, stepBox, main, accum);

  for (const kind of ["edge", "active"]) {
    const marker = s("marker", {
      id: `${uid}-arrow-${kind}`, viewBox: "0 0 10 10", refX: "9", refY: "5",
      markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse",
      class: `gradmagic-marker-${kind}`,
    }, s("path", { d: "M0,0 L10,5 L0,10 z" }));
    defs.appendChild(marker);
  }

  // --- toolbar: zoom and fit
  const depthSlot = h("span", { class: "gradmagic-depth-slot" }); // module depth (depthControl)
  const btn = (label, title, onClick, cls = "") => {
    const b = h("button", { type: "button", class: `gradmagic-btn ${cls}`, title, "aria-label": title }, label);
    b.addEventListener("click", onClick);
    return b;
  };
  toolbar.append(
    btn("+", "zoom in", () => zoomBy(1.25)),
    btn("−", "zoom out", () => zoomBy(0.8)),
    btn("Fit", "fit graph to view", () => fit()),
    depthSlot,
    h("span", { class: "gradmagic-hint" }, "drag to pan · wheel to zoom · click a node (or Tab + Enter)"),
  );

  // --- view transform (viewBox = visible layout rectangle)
  // The graph box's size, cached: reading clientWidth forces a layout of the whole SVG
  // (~250 ms at 2,000 nodes), so it is read once and then kept by the ResizeObserver.
  const box = { w: 0, h: 0 };
  function boxSize() {
    if (box.w <= 0) {
      box.w = graphBox.clientWidth;
      box.h = graphBox.clientHeight;
    }
    return { w: box.w || 560, h: box.h || 360 };
  }
  function applyView() {
    const { w, h: bh } = boxSize();
    svg.setAttribute("viewBox", `${view.x} ${view.y} ${w / view.k} ${bh / view.k}`);
  }
  function fit() {
    const L = idx.layout;
    const { w, h: bh } = boxSize();
    const pad = 16;
    const W = (L.width || 1) + 2 * pad;
    const H = (L.height || 1) + 2 * pad;
    view.k = Math.min(w / W, bh / H, 1.25);
    view.x = -pad - (w / view.k - W) / 2;
    view.y = -pad - (bh / view.k - H) / 2;
    applyView();
  }
  /** First view: the whole graph when it stays readable, else its top at a readable scale. */
  function initialView() {
    fit();
    if (view.k >= 0.45) return;
    const { w } = boxSize();
    view.k = 0.75;
    view.x = -16 - Math.max(0, (w / view.k - (idx.layout.width || 0)) / 2);
    view.y = -8;
    applyView();
  }
  function zoomBy(f, cx, cy) {
    const { w, h: bh } = boxSize();
    const px = cx === undefined ? w / 2 : cx;
    const py = cy === undefined ? bh / 2 : cy;
    const k2 = Math.max(0.05, Math.min(8, view.k * f));
    view.x += px / view.k - px / k2;
    view.y += py / view.k - py / k2;
    view.k = k2;
    applyView();
  }
  function sizeGraphBox() {
    const H = Math.max(180, Math.min(480, (idx.layout.height || 100) + 40));
    graphBox.style.height = `${H}px`;
    if (box.w > 0) box.h = H - 2; // minus the 1-px borders (graph.css)
  }

  // --- pan & zoom handlers
  let drag = null;
  const onPointerDown = (ev) => {
    if (ev.button !== 0 || ev.target.closest(".gradmagic-node, .gradmagic-group")) return;
    drag = { x: ev.clientX, y: ev.clientY, vx: view.x, vy: view.y };
    graphBox.classList.add("gradmagic-dragging");
    graphBox.setPointerCapture?.(ev.pointerId);
  };
  const onPointerMove = (ev) => {
    if (!drag) return;
    view.x = drag.vx - (ev.clientX - drag.x) / view.k;
    view.y = drag.vy - (ev.clientY - drag.y) / view.k;
    applyView();
  };
  const onPointerUp = () => {
    drag = null;
    graphBox.classList.remove("gradmagic-dragging");
  };
  const onWheel = (ev) => {
    ev.preventDefault();
    const r = graphBox.getBoundingClientRect();
    zoomBy(Math.exp(-ev.deltaY * 0.0015), ev.clientX - r.left, ev.clientY - r.top);
  };
  graphBox.addEventListener("pointerdown", onPointerDown);
  graphBox.addEventListener("pointermove", onPointerMove);
  graphBox.addEventListener("pointerup", onPointerUp);
  graphBox.addEventListener("pointercancel", onPointerUp);
  graphBox.addEventListener("wheel", onWheel, { passive: false });
  const resizeObserver = typeof ResizeObserver === "undefined" ? null : new ResizeObserver((entries) => {
    const r = entries[entries.length - 1].contentRect;
    box.w = r.width;
    box.h = r.height;
    if (!view.fitted && box.w > 0) {
      view.fitted = true;
      initialView();
    } else applyView();
  });
  resizeObserver?.observe(graphBox);

  // --- selection
  // model.set fires "change:<name>" at once (Backbone, and the standalone shim): the
  // handlers registered at the end of render() redraw; save_changes syncs to the kernel.
  function select(id) {
    model.set("selected", id);
    model.save_changes();
  }
  function selectedId() {
    return resolveSelected(idx, model.get("selected"));
  }

  // --- graph drawing
  function drawNode(node, box) {
    const kind = node.kind || "op";
    const status = node.status || "unchecked";
    const g = s("g", {
      class: `gradmagic-node gradmagic-kind-${kind} gradmagic-status-${status}`,
      "data-node-id": node.id, "data-name": node.name || "", "data-kind": kind,
      tabindex: "0", role: "button", "aria-pressed": "false", transform: `translate(${box.x},${box.y})`,
      "aria-label": `${nodeTitle(node)}: ${KIND_TEXT[kind] || kind}, ${node.label || ""} ${fmtShape(node.shape)}, ${STATUS_TEXT[status] || status}`,
    });
    const rx = kind === "op" || kind === "opaque" ? Math.min(12, box.h / 2) : 2;
    g.appendChild(s("rect", { class: "gradmagic-node-box", width: box.w, height: box.h, rx, ry: rx }));
    if (kind === "leaf") {
      g.appendChild(s("rect", { class: "gradmagic-node-inner", x: 3, y: 3, width: box.w - 6, height: box.h - 6, rx: 1 }));
    }
    const lines = idx.labels[node.id] || fallbackLines(node);
    const maxChars = Math.max(3, Math.floor((box.w - 2 * PAD_X) / CHAR_W));
    const room = Math.max(1, Math.floor((box.h - PAD_Y) / LINE_H));
    lines.slice(0, room).forEach(([role, text], i) => {
      g.appendChild(s("text", { class: `gradmagic-line-${role}`, x: box.w / 2, y: PAD_Y + i * LINE_H + BASELINE, "text-anchor": "middle" },
        truncate(text, role === "title" ? maxChars - 2 : maxChars)));
    });
    // status mark (shape + colour), step badge slot
    g.appendChild(s("text", { class: "gradmagic-mark", x: box.w - 5, y: PAD_Y + BASELINE, "text-anchor": "end" },
      STATUS_MARK[status] || "?"));
    const badge = s("text", { class: "gradmagic-badge", x: 5, y: PAD_Y + BASELINE });
    nodeBadges.set(node.id, badge);
    g.appendChild(badge);
    return g;
  }

  /** Tooltip text of a node (added on first hover: 2,000 <title>s slow the first render). */
  function nodeTip(node) {
    const kind = node.kind || "op";
    return [
      `${nodeTitle(node)} — ${KIND_TEXT[kind] || kind}${node.label ? " " + node.label : ""}`,
      `${fmtShape(node.shape)} ${node.dtype || ""}`,
      node.source ? `${fmtWhere(node.source)}: ${node.source.code ?? ""}` : "",
      STATUS_TEXT[node.status] || node.status || "",
    ].filter(Boolean).join("\n");
  }

  // one set of listeners for all nodes (event delegation)
  const nodeAt = (ev) => ev.target.closest?.("g.gradmagic-node");
  const onNodeClick = (ev) => {
    const g = nodeAt(ev);
    if (g) select(g.dataset.nodeId);
  };
  const onNodeKey = (ev) => {
    const g = nodeAt(ev);
    if (g && (ev.key === "Enter" || ev.key === " ")) {
      ev.preventDefault();
      select(g.dataset.nodeId);
    }
  };
  const onNodeOver = (ev) => {
    const g = nodeAt(ev);
    if (g && !g.querySelector("title")) g.appendChild(s("title", {}, nodeTip(idx.nodes.get(g.dataset.nodeId) || {})));
  };
  nodeLayer.addEventListener("click", onNodeClick);
  nodeLayer.addEventListener("keydown", onNodeKey);
  nodeLayer.addEventListener("pointerover", onNodeOver);
  nodeLayer.addEventListener("focusin", onNodeOver);

  function drawGroup(group) {
    const folded = !!group.folded;
    const g = s("g", {
      class: `gradmagic-group ${folded ? "gradmagic-folded" : "gradmagic-unfolded"}`,
      "data-group-id": group.id, tabindex: "0", role: "button",
      "aria-label": `${group.label} (${(group.members || []).length} nodes), ${folded ? "folded: press Enter to expand" : "expanded: press Enter to fold"}`,
      transform: `translate(${group.x},${group.y})`,
    });
    g.appendChild(s("rect", { class: "gradmagic-group-box", width: group.w, height: group.h, rx: 6 }));
    const maxChars = Math.max(4, Math.floor((group.w - 2 * PAD_X) / CHAR_W));
    if (folded) {
      const lines = idx.labels[group.id] || [["title", group.label || group.id], ["detail", `${(group.members || []).length} nodes`]];
      const room = Math.max(1, Math.floor((group.h - PAD_Y) / LINE_H));
      lines.slice(0, room).forEach(([role, text], i) => {
        g.appendChild(s("text", { class: `gradmagic-line-${role}`, x: group.w / 2, y: PAD_Y + i * LINE_H + BASELINE, "text-anchor": "middle" },
          truncate(text, role === "title" ? maxChars - 2 : maxChars)));
      });
      g.appendChild(s("text", { class: "gradmagic-mark", x: group.w - 5, y: PAD_Y + BASELINE, "text-anchor": "end" }, "⊞"));
    } else {
      g.appendChild(s("text", { class: "gradmagic-group-fold", x: 2, y: -5 }, truncate(`⊟ ${group.label} · click to fold`, 40)));
    }
    g.appendChild(s("title", {}, `${group.label}: ${(group.members || []).length} nodes`));
    const toggle = (ev) => {
      const cur = new Set(model.get("expanded") || []);
      if (folded) cur.add(group.id);
      else cur.delete(group.id);
      model.set("expanded", [...cur]);
      model.save_changes();
    };
    g.addEventListener("click", toggle);
    g.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        toggle(ev);
      }
    });
    return g;
  }

  function edgePath(points) {
    if (!points || points.length === 0) return "";
    return points.map((p, i) => `${i ? "L" : "M"}${p[0]},${p[1]}`).join(" ");
  }

  function drawGraph() {
    for (const layer of [edgeLayer, groupLayer, nodeLayer, labelLayer]) layer.replaceChildren();
    nodeEls.clear();
    groupEls.clear();
    selectedEl = null;
    edgeIndex.clear();
    nodeBadges.clear();
    doneCount.clear();
    doneK = -1;
    currentMarks = [];
    activeEdges = [];
    const L = idx.layout;
    const hidden = new Set(L.hidden || []);
    for (const group of L.groups || []) {
      const g = group.kind === "module"
        ? drawModuleBox(group, idx.labels[group.id], () => setExpanded(model, group.id, !!group.folded))
        : drawGroup(group);
      groupEls.set(group.id, g);
      groupLayer.appendChild(g);
    }
    const edgeFrag = document.createDocumentFragment();
    for (const e of L.edges || []) {
      const path = s("path", {
        class: "gradmagic-edge", d: edgePath(e.points), "marker-end": `url(#${uid}-arrow-edge)`,
        "data-source": e.source, "data-target": e.target, "data-input": e.input,
      });
      const entry = { el: path, points: e.points };
      edgeIndex.set(`${e.source}|${e.target}|${e.input}`, entry);
      if (!edgeIndex.has(`${e.source}|${e.target}`)) edgeIndex.set(`${e.source}|${e.target}`, entry);
      edgeFrag.appendChild(path);
    }
    edgeLayer.appendChild(edgeFrag);
    const nodeFrag = document.createDocumentFragment();
    for (const [id, box] of Object.entries(L.nodes || {})) {
      const node = idx.nodes.get(id);
      if (!node || hidden.has(id)) continue;
      const g = drawNode(node, box);
      nodeEls.set(id, g);
      nodeFrag.appendChild(g);
    }
    nodeLayer.appendChild(nodeFrag);
    emptyNote.hidden = idx.nodes.size > 0;
    sizeGraphBox();
  }

  let selectedEl = null;
  function updateSelection() {
    const sel = selectedId();
    if (selectedEl) {
      selectedEl.classList.remove("gradmagic-selected");
      selectedEl.setAttribute("aria-pressed", "false");
    }
    // a node inside a folded group: its group box shows the selection
    const gid = idx.groupOf.get(sel);
    selectedEl = nodeEls.get(sel) || groupEls.get(gid) || null;
    if (!selectedEl) return;
    selectedEl.classList.add("gradmagic-selected");
    selectedEl.setAttribute("aria-pressed", "true");
    const box = nodeEls.has(sel) ? idx.layout.nodes[sel] : (idx.layout.groups || []).find((g) => g.id === gid);
    scrollIntoView(box);
  }

  /** Pan (never zoom) so that `box` ({x, y, w, h} in layout units) is in view. */
  function scrollIntoView(box) {
    if (!box) return;
    const { w, h: bh } = boxSize();
    const vw = w / view.k;
    const vh = bh / view.k;
    const m = 8 / view.k;
    const clampAxis = (lo, size, vlo, vsize) => {
      if (size + 2 * m > vsize) return lo + size / 2 - vsize / 2; // too big: centre it
      if (lo - m < vlo) return lo - m;
      if (lo + size + m > vlo + vsize) return lo + size + m - vsize;
      return vlo;
    };
    const x = clampAxis(box.x, box.w, view.x, vw);
    const y = clampAxis(box.y, box.h, view.y, vh);
    if (x === view.x && y === view.y) return;
    view.x = x;
    view.y = y;
    applyView();
  }

  // --- header: verdict, stats, notes
  function renderHeader() {
    const r = idx.report;
    header.replaceChildren();
    const ok = r.ok !== false;
    const first = r.first_divergence ? idx.nodes.get(r.first_divergence) : null;
    let verdict = ok
      ? "✓ every checked value and gradient agrees with PyTorch"
      : `✗ gradmagic and PyTorch disagree${first ? ` — first at ${nodeTitle(first)}` : ""}`;
    if (ok && idx.nodes.size === 0) verdict = "nothing to check: no tensors recorded";
    let cls = idx.nodes.size === 0 ? "gradmagic-meta" : ok ? "gradmagic-ok" : "gradmagic-bad";
    if (r.verdict && idx.nodes.size) {  // the headline every view shows (viz/facts.py)
      verdict = r.verdict.headline;
      cls = { ok: "gradmagic-ok", error: "gradmagic-ok", differ: "gradmagic-bad" }[r.verdict.level] || "gradmagic-meta";
    }
    header.appendChild(h("span", { class: `gradmagic-verdict ${cls}` }, verdict));
    const all = [...idx.nodes.values()];
    const ops = all.filter((n) => n.kind === "op" || n.kind === "opaque").length;
    const saved = all.reduce((acc, n) => acc + (n.saved_bytes || 0), 0);
    if (r.cell && r.cell.number !== null && r.cell.number !== undefined) {
      header.appendChild(h("span", { class: "gradmagic-meta" }, `cell [${r.cell.number}]`));
    }
    header.appendChild(h("span", { class: "gradmagic-meta" },
      `${all.length} nodes · ${ops} ops · ${fmtBytes(saved)} saved for backward`));
    if ((r.unsupported || []).length) {
      header.appendChild(h("div", { class: "gradmagic-note" }, `unchecked (no engine rule): ${r.unsupported.join(", ")}`));
    }
    for (const note of r.notes || []) header.appendChild(h("div", { class: "gradmagic-note" }, note));
    if (r.error) {
      header.appendChild(h("div", { class: "gradmagic-note gradmagic-bad" }, `the cell raised ${r.error.type}: ${r.error.message}`));
    }
  }

  // --- details panel
  function row(dl, label, ...content) {
    dl.append(h("dt", {}, label), h("dd", {}, ...content));
  }
  function code(text) {
    return h("code", {}, text);
  }
  function pre(text) {
    return h("pre", { class: "gradmagic-value" }, text);
  }

  function renderDetails() {
    details.replaceChildren();
    const node = idx.nodes.get(selectedId());
    if (!node) {
      details.appendChild(h("p", { class: "gradmagic-empty" }, "Click a node (or Tab to it and press Enter) to see its value, local derivative and gradient."));
      return;
    }
    const status = node.status || "unchecked";
    details.appendChild(h("h4", {}, nodeTitle(node), " ",
      h("span", { class: "gradmagic-tag" }, KIND_TEXT[node.kind] || node.kind), " ",
      h("span", { class: `gradmagic-tag gradmagic-status-${status}` }, `${STATUS_MARK[status] || ""} ${status}`)));
    const dl = h("dl");
    const names = (node.aliases || []).filter(Boolean);
    row(dl, "variable", names.length ? code(names.join(", ")) : h("span", { class: "gradmagic-meta" }, "(no name: an intermediate result)"));
    if (node.op || node.label) {
      row(dl, "op", code(node.label || node.op), node.torch_op ? h("span", { class: "gradmagic-meta" }, ` from ${node.torch_op}`) : "");
    }
    if ((node.formulas || []).length) {
      row(dl, "local derivative", h("ul", { class: "gradmagic-formulas" }, node.formulas.map((f) => h("li", {}, code(f)))));
    }
    if (node.source) {
      const src = node.source;
      row(dl, "source", h("span", { class: "gradmagic-meta" }, `${fmtWhere(src)}: `), code(src.code ?? ""));
    }
    row(dl, "shape · dtype", `${fmtShape(node.shape)} · ${node.dtype || "?"}`, node.requires_grad ? " · requires_grad" : "");
    row(dl, "value", pre(fmtValue(node.value)));
    const saved = node.saved || [];
    if (saved.length) {
      row(dl, "saved for backward", h("ul", { class: "gradmagic-saved" },
        saved.map((v) => h("li", {}, code(v.name), ` ${fmtShape(v.shape)} ${v.dtype || ""} · ${fmtBytes(v.bytes)}`))),
      h("span", { class: "gradmagic-meta" }, `total ${fmtBytes(node.saved_bytes)}`));
    } else if (node.kind === "op") {
      row(dl, "saved for backward", h("span", { class: "gradmagic-meta" }, "nothing"));
    }
    const gradKnown = node.grad !== null && node.grad !== undefined;
    if (gradKnown || (node.torch_grad !== null && node.torch_grad !== undefined)) {
      row(dl, "grad (gradmagic)", pre(fmtValue(node.grad)));
      row(dl, "grad (PyTorch)", pre(fmtValue(node.torch_grad)));
      const err = node.max_abs_err === null || node.max_abs_err === undefined ? "" : ` · max |Δ| ${fmtErr(node.max_abs_err)}`;
      row(dl, "verdict", h("span", { class: `gradmagic-status-${status}` }, `${STATUS_MARK[status] || ""} ${STATUS_TEXT[status] || status}`),
        h("span", { class: "gradmagic-meta" }, err));
    } else {
      const why = node.is_leaf
        ? (node.requires_grad ? "None (no backward has reached it yet)" : "None (does not require grad)")
        : "not kept: PyTorch frees non-leaf gradients unless retain_grad() is called";
      row(dl, "grad", h("span", { class: "gradmagic-meta" }, why));
    }
    const flowing = gradientDuringBackward(node.id);
    if (flowing) row(dl, "g in backward", pre(flowing));
    details.appendChild(dl);
  }

  function gradientDuringBackward(id) {
    const call = idx.calls[model.get("call") || 0];
    const step = (call?.steps || []).find((st) => st.kind === "node" && st.node === id);
    return step ? fmtValue(step.grad_output) : "";
  }

  // --- step-through backward
  const stepPrev = btn("◀", "previous backward step", () => setStep(stepOver(currentSteps(), model.get("step"), -1, idx)), "gradmagic-prev");
  const stepNext = btn("▶", "next backward step", () => setStep(stepOver(currentSteps(), model.get("step"), 1, idx)), "gradmagic-next");
  const slider = h("input", { type: "range", class: "gradmagic-slider", min: "-1", max: "0", step: "1", value: "-1", "aria-label": "backward step" });
  const stepLabel = h("span", { class: "gradmagic-step-label" });
  const callSelect = h("select", { class: "gradmagic-call", "aria-label": "backward call to replay" });
  slider.addEventListener("input", () => setStep(Number(slider.value)));
  callSelect.addEventListener("change", () => {
    model.set("call", Number(callSelect.value));
    model.set("step", -1);
    model.save_changes();
  });
  stepBox.append(h("span", { class: "gradmagic-step-title" }, "backward"), callSelect, stepPrev, slider, stepNext, stepLabel);

  function currentSteps() {
    const call = idx.calls[model.get("call") || 0];
    return call && Array.isArray(call.steps) ? call.steps : [];
  }
  function setStep(k) {
    const n = currentSteps().length;
    const v = Math.max(-1, Math.min(n - 1, Number.isFinite(k) ? k : -1));
    model.set("step", v);
    model.save_changes();
  }
  function renderStepControl() {
    callSelect.replaceChildren();
    idx.calls.forEach((c, i) => {
      const where = c.source ? ` (${fmtWhere(c.source)}): ${c.source.code ?? ""}` : "";
      callSelect.appendChild(h("option", { value: String(i) }, truncate(`#${i} ${c.kind}${where}`, 60)));
    });
    callSelect.value = String(model.get("call") || 0);
    callSelect.hidden = idx.calls.length < 2;
    const steps = currentSteps();
    slider.max = String(Math.max(-1, steps.length - 1));
    stepBox.classList.toggle("gradmagic-disabled", steps.length === 0);
    for (const c of [slider, stepPrev, stepNext]) c.disabled = steps.length === 0;
  }

  // Replay state. "done" marks are applied incrementally (a slider move touches only the
  // steps between the old and the new position); the current step's marks are redone.
  let doneK = -1; // steps[0..doneK] carry their "done" mark
  const doneCount = new Map(); // element -> number of applied steps marking it (groups hold many)
  let currentMarks = []; // [element, class] pairs of the current step
  let activeEdges = []; // edges whose arrow marker shows the active style

  function nodeOrGroup(id) {
    return nodeEls.get(id) || groupEls.get(idx.groupOf.get(id));
  }
  function setDone(st, i, on) {
    const el = nodeOrGroup(st.node);
    if (!el) return;
    const n = (doneCount.get(el) || 0) + (on ? 1 : -1);
    doneCount.set(el, n);
    el.classList.toggle("gradmagic-done", n > 0);
    const badge = nodeBadges.get(st.node);
    if (badge) badge.textContent = on ? `${i + 1}` : "";
  }
  function resetDone() {
    for (const [el] of doneCount) el.classList.remove("gradmagic-done");
    for (const badge of nodeBadges.values()) badge.textContent = "";
    doneCount.clear();
    doneK = -1;
  }

  let doneCall = null; // the call whose steps the "done" marks belong to
  function updateStep() {
    const steps = currentSteps();
    const call = model.get("call") || 0;
    if (call !== doneCall) {
      resetDone();
      doneCall = call;
    }
    const k = Math.min(model.get("step") ?? -1, steps.length - 1);
    slider.value = String(k);
    if (!idx.calls.length) stepLabel.textContent = "no backward call in this cell";
    else if (!steps.length) stepLabel.textContent = "this call kept only a summary (no steps)";
    else stepLabel.textContent = k < 0 ? `not started · ${steps.length} steps` : `step ${k + 1} of ${steps.length}`;
    for (; doneK < k; doneK++) setDone(steps[doneK + 1], doneK + 1, true);
    for (; doneK > k; doneK--) setDone(steps[doneK], doneK, false);
    for (const [el, cls] of currentMarks) el.classList.remove(cls);
    currentMarks = [];
    for (const el of activeEdges) el.setAttribute("marker-end", `url(#${uid}-arrow-edge)`);
    activeEdges = [];
    labelLayer.replaceChildren();
    root.classList.toggle("gradmagic-replaying", k >= 0);
    if (k < 0) {
      narration.replaceChildren();
      if (steps.length) narration.appendChild(h("p", { class: "gradmagic-meta" }, "Press ▶ to replay the backward pass one step at a time."));
      return;
    }
    const mark = (el, cls) => {
      if (!el) return;
      el.classList.add(cls);
      currentMarks.push([el, cls]);
    };
    const st = steps[k];
    mark(nodeOrGroup(st.node), "gradmagic-current");
    if (st.kind === "node") {
      for (const c of st.contributions || []) {
        const e = findEdge(c.to, st.node, c.input);
        if (e) {
          mark(e.el, "gradmagic-edge-active");
          e.el.setAttribute("marker-end", `url(#${uid}-arrow-active)`);
          activeEdges.push(e.el);
          labelLayer.appendChild(edgeLabel(e, st, c, labelLayer.childElementCount));
        }
        mark(nodeOrGroup(c.to), "gradmagic-receiving");
      }
    }
    renderNarration(steps, k);
    if (labelLayer.childElementCount && view.fitted) {
      const b = labelLayer.getBBox(); // the labels of this step stay on screen
      scrollIntoView({ x: b.x, y: b.y, w: b.width, h: b.height });
    }
  }

  function findEdge(source, target, input) {
    const src = idx.groupOf.get(source) || source;
    const tgt = idx.groupOf.get(target) || target;
    return edgeIndex.get(`${source}|${target}|${input}`) || edgeIndex.get(`${src}|${tgt}|${input}`) ||
      edgeIndex.get(`${src}|${tgt}`);
  }

  /** `g × local derivative = contribution` beside the edge just used: labels of one step
   * alternate left/right of their edges (two inputs often share a short edge pair). */
  function edgeLabel(edge, st, c, slot) {
    const folded = st.grad_output === null || st.grad_output === undefined;
    const pts = edge.points || [];
    const i = Math.max(0, Math.floor((pts.length - 1) / 2));
    const a = pts[i] || [0, 0];
    const b = pts[i + 1] || a;
    const x = (a[0] + b[0]) / 2;
    const y = (a[1] + b[1]) / 2 + Math.floor(slot / 2) * 32;
    const lines = folded ? [`g × (${c.formula || "local"})`] : [
      `${previewValue(st.grad_output, 14)} × (${c.formula || "local"})`,
      `= ${previewValue(c.value, 22)}`,
    ];
    const width = Math.max(...lines.map((t) => t.length)) * LABEL_CHAR_W + 10;
    const height = lines.length * 13 + 5;
    const left = slot % 2 === 0;
    const x0 = left ? x - 4 - width : x + 4;
    const g = s("g", { class: "gradmagic-edge-label", transform: `translate(${x0},${y - height / 2})` });
    g.appendChild(s("rect", { x: 0, y: 0, width, height, rx: 3 }));
    lines.forEach((t, k) => g.appendChild(s("text", { x: width / 2, y: 12 + k * 13, "text-anchor": "middle" }, t)));
    return g;
  }

  function nameOf(id) {
    const n = idx.nodes.get(id);
    return n ? nodeTitle(n) : id;
  }

  function renderNarration(steps, k) {
    const st = steps[k];
    narration.replaceChildren();
    const p = (...c) => h("p", {}, ...c);
    narration.appendChild(h("h4", {}, `Backward step ${k + 1} of ${steps.length}`));
    const incoming = incomingContributions(idx, steps, k, st.node);
    const folded = (st.kind === "node" && (st.grad_output === null || st.grad_output === undefined))
      || (st.kind === "hook" && (st.before === null || st.before === undefined));
    if (folded) {
      const gid = idx.groupOf.get(st.node);
      const group = (idx.layout.groups || []).find((g) => g.id === gid);
      narration.appendChild(p(code(nameOf(st.node)), ` inside the folded group ${group ? `“${group.label}”` : ""}: `,
        "expand the group (click it) to see the gradients of this step."));
    } else if (st.kind === "hook") {
      narration.appendChild(p("A hook on ", code(nameOf(st.node)), " runs before its gradient is used: ", code(`hook on ${nameOf(st.node)}: ${st.effect || "g → hook(g)"}`)));
      const dl = h("dl", { class: "gradmagic-accum-step gradmagic-hook-step" });
      row(dl, "g received", pre(fmtValue(st.before)));
      row(dl, "g handed on", pre(fmtValue(st.after)));
      narration.appendChild(dl);
      narration.appendChild(p("What the hook returns replaces g from here on: the engine replays it at the same point of its backward, and checks the gradient that reached it."));
    } else if (st.kind === "node") {
      const node = idx.nodes.get(st.node) || {};
      narration.appendChild(p(code(nameOf(st.node)), node.name && node.label ? ` (${node.label})` : "", " receives upstream gradient g = ", code(previewValue(st.grad_output))));
      if (incoming.length > 1) narration.appendChild(sumBlock(incoming, st.grad_output, "paths meet here: g is the sum"));
      const ul = h("ul", { class: "gradmagic-contribs" });
      for (const c of st.contributions || []) {
        ul.appendChild(h("li", {}, "to ", code(nameOf(c.to)), ` (input ${c.input}): upstream g × local derivative `,
          code(c.formula || "?"), " = ", code(fmtValue(c.value))));
      }
      narration.appendChild(ul);
    } else {
      narration.appendChild(p(code(`${nameOf(st.node)}.grad`), " receives its total:"));
      if (incoming.length > 1) narration.appendChild(sumBlock(incoming, st.added, "paths meet here: the contributions add up"));
      const dl = h("dl", { class: "gradmagic-accum-step" });
      row(dl, "before", pre(fmtValue(st.before)));
      row(dl, "+ added", pre(fmtValue(st.added)));
      row(dl, "= after", pre(fmtValue(st.after)));
      narration.appendChild(dl);
      if (!isZero(st.before)) {
        narration.appendChild(h("p", { class: "gradmagic-warn" }, "⚠ .grad already held a value: backward() adds to it (accumulates) instead of replacing it."));
      }
    }
  }

  function sumBlock(incoming, total, title) {
    const box = h("div", { class: "gradmagic-sum" }, h("strong", {}, title));
    const ul = h("ul");
    for (const c of incoming) ul.appendChild(h("li", {}, code(previewValue(c.value)), " via ", code(nameOf(c.from)), ` input ${c.input}`));
    box.append(ul, h("div", {}, "sum = ", code(fmtValue(total))));
    return box;
  }

  // --- accumulation panel
  function renderAccum() {
    accum.replaceChildren();
    const leaves = idx.report.leaves || [];
    if (!leaves.length) return;
    accum.appendChild(h("h4", {}, "Gradient accumulation (.grad of each leaf over time)"));
    for (const leaf of leaves) {
      const rowEl = h("div", { class: "gradmagic-leaf", "data-leaf-id": leaf.id, "data-leaf-name": leaf.name || "" });
      const status = leaf.status || "unchecked";
      rowEl.appendChild(h("div", { class: "gradmagic-leaf-head" },
        code(`${leaf.name || leaf.id}.grad`), ` ${fmtShape(leaf.shape)} ${leaf.dtype || ""} `,
        h("span", { class: `gradmagic-tag gradmagic-status-${status}` }, `${STATUS_MARK[status] || ""} ${status}`),
        " now: ", code(fmtValue(leaf.grad, leaf.dtype))));
      const line = h("ol", { class: "gradmagic-timeline" });
      if (leaf.events_dropped) line.appendChild(h("li", { class: "gradmagic-event gradmagic-dropped" }, `… ${leaf.events_dropped} earlier`));
      const events = leaf.events || [];
      for (const ev of events.filter((e) => e.kind !== "update")) {
        const item = timelineItem(ev, ev.after);
        if (ev.kind === "backward" && !isZero(ev.before)) item.classList.add("gradmagic-event-accumulated");
        line.appendChild(item);
      }
      rowEl.appendChild(line);
      // optimizer steps and in-place updates change the value, never .grad: a row of their own
      const updates = events.filter((e) => e.kind === "update");
      if (updates.length) {
        rowEl.appendChild(h("div", { class: "gradmagic-leaf-head gradmagic-updates-head" },
          code(leaf.name || leaf.id), " value updates (Δ = the step)"));
        rowEl.appendChild(h("ol", { class: "gradmagic-timeline gradmagic-updates" },
          updates.map((ev) => (ev.added ? timelineItem(ev, ev.added, "Δ ") : timelineItem(ev, ev.after)))));
      }
      if (leaf.accumulated_without_clearing) {
        rowEl.appendChild(h("p", { class: "gradmagic-warn" },
          `⚠ ${leaf.name || "this leaf"}.grad accumulated without clearing: backward() adds to .grad, so gradients from earlier calls are still in it. ` +
          `Call ${leaf.name || "x"}.grad.zero_() (or optimizer.zero_grad()) before the next backward().`));
      }
      accum.appendChild(rowEl);
    }
  }

  /** One event of a timeline: its kind and cell, then `value` (an update's Δ, else .grad after). */
  function timelineItem(ev, value, prefix = "") {
    const where = ev.cell !== null && ev.cell !== undefined ? `[${ev.cell}]` : "";
    const shown = value === undefined || value === null ? "None" : prefix + previewValue(value);
    return h("li", { class: `gradmagic-event gradmagic-event-${ev.kind}`, title: ev.code || "" },
      h("span", { class: "gradmagic-event-kind" }, `${EVENT_TEXT[ev.kind] || ev.kind} ${where}`.trim()),
      h("span", { class: "gradmagic-event-value" }, truncate(shown, 28)));
  }

  // --- diagnoses: their panel first of all, their nodes marked (see diagnosisPanel)
  function renderDiagnoses() {
    diagnoses?.remove();
    diagnoses = diagnosisPanel(idx.report, idx.nodes, select);
    if (diagnoses) root.insertBefore(diagnoses, header);
  }

  // --- model events
  function renderAll() {
    idx = indexGraph(model.get("graph") || {});
    renderDiagnoses();
    renderHeader();
    drawGraph();
    depthSlot.replaceChildren(...[depthControl(idx.layout, model)].filter(Boolean));
    markDiagnosedNodes(idx, nodeEls, groupEls);
    renderStepControl();
    updateSelection();
    updateStep();
    renderDetails();
    renderAccum();
    flowPanel?.remove(); // the gradient-flow panel below the accumulation (gradFlowPanel)
    flowPanel = gradFlowPanel(model.get("graph")?.flow);
    if (flowPanel) root.insertBefore(flowPanel, accum);
    if (view.fitted) applyView();
  }
  const onGraph = () => renderAll();
  const onSelected = () => {
    updateSelection();
    renderDetails();
  };
  const onStep = () => updateStep();
  const onCall = () => {
    renderStepControl();
    updateStep();
    renderDetails();
  };
  model.on("change:graph", onGraph);
  model.on("change:selected", onSelected);
  model.on("change:step", onStep);
  model.on("change:call", onCall);
  renderAll();
  if (boxSize() && box.w > 0) {
    view.fitted = true;
    initialView();
  } else applyView();

  return () => {
    model.off("change:graph", onGraph);
    model.off("change:selected", onSelected);
    model.off("change:step", onStep);
    model.off("change:call", onCall);
    resizeObserver?.disconnect();
    root.remove();
  };
}

export { render };
export default { render };
