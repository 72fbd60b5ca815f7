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
  const title = nodeTitle(node);
  const lines = [["title", title]];
  const kind = node.kind === "op" ? node.label || node.op : KIND_TEXT[node.kind] || node.kind;
  if (kind && kind !== title) lines.push(["kind", kind]);
  lines.push(["shape", `${fmtShape(node.shape)} ${node.dtype || ""}`.trim()]);
  if (node.value) lines.push(["value", previewValue(node.value)]);
  if (node.grad) lines.push(["grad", "grad " + previewValue(node.grad, 25)]);
  return lines;
}

/** What the learner wrote first: the variable, else the expression (`a * b`, `net.1`), else torch's name. */
function nodeTitle(node) {
  return node.name || node.expr || node.label || node.op || node.id;
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

// ---------------------------------------------------------------- training loops (issue 13)

/**
 * The iteration selector of a training loop ("iteration 3 of 300"): the report shows one
 * iteration (gradmagic.viz.iterations.view_report); choosing another sets the synced
 * `iteration`, and the kernel (or the standalone page) sends that iteration's graph.
 * Null when the report has no loop.
 * @param {Object} report the report dict (`iterations`: the plan)
 * @param {Model} model
 * @returns {HTMLElement|null}
 */
function iterationControl(report, model) {
  const plan = report.iterations;
  if (!plan || !(plan.items || []).length) return null;
  const select = h("select", { class: "gradmagic-iteration", "aria-label": "training loop iteration shown" });
  for (const it of plan.items) {
    const text = it.checked ? it.label : `${it.label} (not checked)`;
    select.appendChild(h("option", { value: String(it.index), selected: it.index === plan.shown }, text));
  }
  select.addEventListener("change", () => {
    model.set("iteration", Number(select.value));
    model.save_changes();
  });
  const lines = plan.lines || [];
  const where = lines.length ? ` (line${lines.length > 1 ? "s" : ""} ${lines[0]}${lines.length > 1 ? `–${lines[lines.length - 1]}` : ""})` : "";
  return h("label", {
    class: "gradmagic-iteration-control", "data-iterations": plan.count, "data-total": plan.total,
    title: `the training loop${where} is drawn one iteration at a time; iterations ${plan.kept || `${plan.kept_from}–${plan.kept_from + plan.count - 1}`} of ${plan.total} are kept in full`,
  }, "training loop ", select);
}

/** Backward call index -> the loop iteration it belongs to (none when the report has no loop). */
function callIterations(report) {
  const out = new Map();
  for (const it of report.iterations?.items || []) for (const c of it.calls || []) out.set(c, it.index);
  return out;
}

/** The local derivative alone and the product: `∂/∂a = g·b` -> {local: "∂/∂a = b", factor: "b"}. */
export function splitFormula(formula) {
  const m = /^(∂\/∂\S+)\s*=\s*g\s*[·×*]\s*(.+)$/.exec(formula || "");
  return m ? { local: `${m[1]} = ${m[2]}`, factor: m[2] } : { local: formula || "?", factor: null };
}

// ---------------------------------------------------------------- render: the parts
// render() composes parts with one job each. They share `ctx`: the model, the indexed graph
// (`ctx.idx`, replaced on every graph change), the selection and the drawn boxes.

const READABLE_SCALE = 13 / 12; // node text is 12 px in layout units: ≥ 13 px on screen
const READABLE_NODES = 60; // up to this many boxes the graph box grows to stay readable
const MAX_GRAPH_H = 960;

function button(label, title, onClick, cls = "") {
  const b = h("button", { type: "button", class: `gradmagic-btn ${cls}`, title, "aria-label": title }, label);
  b.addEventListener("click", onClick);
  return b;
}
function row(dl, label, ...content) {
  dl.append(h("dt", {}, label), h("dd", {}, ...content));
}
function code(text) {
  return h("code", {}, text);
}
function pre(text) {
  return h("pre", { class: "gradmagic-value" }, text);
}

/** Number of boxes drawn: visible nodes and folded groups. */
function visibleBoxes(layout) {
  const hidden = new Set(layout.hidden || []);
  const nodes = Object.keys(layout.nodes || {}).filter((id) => !hidden.has(id)).length;
  return nodes + (layout.groups || []).filter((g) => g.folded).length;
}

/**
 * The graph: SVG drawing of the layout, pan/zoom/fit, selection highlight.
 * @param {Object} ctx shared state (model, idx, select, selectedId, nodeEls, groupEls)
 */
function graphView(ctx) {
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
  for (const kind of ["edge", "active"]) {
    defs.appendChild(s("marker", {
      id: `${ctx.uid}-arrow-${kind}`, viewBox: "0 0 10 10", refX: "9", refY: "5",
      markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse", class: `gradmagic-marker-${kind}`,
    }, s("path", { d: "M0,0 L10,5 L0,10 z" })));
  }
  const view = { x: 0, y: 0, k: 1, fitted: false, auto: true };
  const edgeIndex = new Map(); // "source|target|input" and "source|target" -> {el, points}
  const nodeBadges = new Map(); // node id -> its step-number <text>

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
  /** The whole graph in view, centred: no box clipped at the edges. */
  function fit() {
    const L = ctx.idx.layout;
    const { w, h: bh } = boxSize();
    const pad = 16;
    const W = (L.width || 1) + 2 * pad;
    const H = (L.height || 1) + 2 * pad;
    view.k = Math.min(w / W, bh / H, 1.25);
    view.x = -pad - (w / view.k - W) / 2;
    view.y = -pad - (bh / view.k - H) / 2;
    applyView();
  }
  function zoomBy(f, cx, cy) {
    view.auto = false;
    const { w, h: bh } = boxSize();
    const px = cx === undefined ? w / 2 : cx;
    const py = cy === undefined ? bh / 2 : cy;
    const k2 = Math.max(0.05, Math.min(8, view.k * f));
    view.x += px / view.k - px / k2;
    view.y += py / view.k - py / k2;
    view.k = k2;
    applyView();
  }
  /** Tall enough that "Fit" keeps node text at the notebook's size (up to READABLE_NODES boxes). */
  function sizeGraphBox() {
    const L = ctx.idx.layout;
    const W = (L.width || 100) + 32;
    // a graph that needs the room takes the whole width; the side panel goes below it
    const full = ctx.root.clientWidth || 0;
    const wide = visibleBoxes(L) <= READABLE_NODES && full > 0 && W * READABLE_SCALE > full * 0.6;
    ctx.setWide(wide);
    const width = wide ? full : box.w > 0 ? box.w : 560;
    const want = visibleBoxes(L) <= READABLE_NODES ? Math.max(READABLE_SCALE, Math.min(1.25, width / W)) : 1;
    const k = Math.min(want, width / W);
    // up to READABLE_NODES boxes the box grows as tall as the graph needs at a readable size (the
    // page scrolls past it: a plain wheel scrolls, ctrl + wheel zooms); larger graphs stop at MAX_GRAPH_H
    const cap = visibleBoxes(L) <= READABLE_NODES ? Infinity : MAX_GRAPH_H;
    const H = Math.round(Math.max(180, Math.min(cap, ((L.height || 100) + 32) * k + 2)));
    graphBox.style.height = `${H}px`;
    if (box.w > 0) box.h = H - 2; // minus the 1-px borders (graph.css)
  }

  // pan & zoom
  let drag = null;
  graphBox.addEventListener("pointerdown", (ev) => {
    if (ev.button !== 0 || ev.target.closest(".gradmagic-node, .gradmagic-group")) return;
    drag = { x: ev.clientX, y: ev.clientY, vx: view.x, vy: view.y };
    graphBox.classList.add("gradmagic-dragging");
    graphBox.setPointerCapture?.(ev.pointerId);
  });
  graphBox.addEventListener("pointermove", (ev) => {
    if (!drag) return;
    view.auto = false;
    view.x = drag.vx - (ev.clientX - drag.x) / view.k;
    view.y = drag.vy - (ev.clientY - drag.y) / view.k;
    applyView();
  });
  const onPointerUp = () => {
    drag = null;
    graphBox.classList.remove("gradmagic-dragging");
  };
  graphBox.addEventListener("pointerup", onPointerUp);
  graphBox.addEventListener("pointercancel", onPointerUp);
  graphBox.addEventListener("wheel", (ev) => {
    if (!ev.ctrlKey && !ev.metaKey) return; // a plain wheel scrolls the notebook (a pinch sets ctrlKey)
    ev.preventDefault();
    const r = graphBox.getBoundingClientRect();
    zoomBy(Math.exp(-ev.deltaY * 0.0015), ev.clientX - r.left, ev.clientY - r.top);
  }, { passive: false });
  const resizeObserver = typeof ResizeObserver === "undefined" ? null : new ResizeObserver((entries) => {
    const r = entries[entries.length - 1].contentRect;
    box.w = r.width;
    box.h = r.height;
    if ((!view.fitted || view.auto) && box.w > 0) { // fitted until the user pans or zooms
      view.fitted = true;
      sizeGraphBox();
      fit();
    } else applyView();
  });
  resizeObserver?.observe(graphBox);

  // nodes: one set of listeners for all (event delegation)
  const nodeAt = (ev) => ev.target.closest?.("g.gradmagic-node");
  nodeLayer.addEventListener("click", (ev) => {
    const g = nodeAt(ev);
    if (g) ctx.select(g.dataset.nodeId);
  });
  nodeLayer.addEventListener("keydown", (ev) => {
    const g = nodeAt(ev);
    if (g && (ev.key === "Enter" || ev.key === " ")) {
      ev.preventDefault();
      ctx.select(g.dataset.nodeId);
    }
  });
  const onNodeOver = (ev) => {  // tooltips on first hover: 2,000 <title>s slow the first render
    const g = nodeAt(ev);
    if (g && !g.querySelector("title")) g.appendChild(s("title", {}, nodeTip(ctx.idx.nodes.get(g.dataset.nodeId) || {})));
  };
  nodeLayer.addEventListener("pointerover", onNodeOver);
  nodeLayer.addEventListener("focusin", onNodeOver);

  function drawNode(node, nb) {
    const kind = node.kind || "op";
    const status = node.status || "unchecked";
    const g = s("g", {
      class: `gradmagic-node gradmagic-kind-${kind} gradmagic-status-${status}`,
      "data-node-id": node.id, "data-name": node.name || "", "data-kind": kind,
      tabindex: "0", role: "button", "aria-pressed": "false", transform: `translate(${nb.x},${nb.y})`,
      "aria-label": `${nodeTitle(node)}: ${KIND_TEXT[kind] || kind}, ${node.label || ""} ${fmtShape(node.shape)}, ${STATUS_TEXT[status] || status}`,
    });
    const rx = kind === "op" || kind === "opaque" ? Math.min(12, nb.h / 2) : 2;
    g.appendChild(s("rect", { class: "gradmagic-node-box", width: nb.w, height: nb.h, rx, ry: rx }));
    if (kind === "leaf") {
      g.appendChild(s("rect", { class: "gradmagic-node-inner", x: 3, y: 3, width: nb.w - 6, height: nb.h - 6, rx: 1 }));
    }
    const lines = ctx.idx.labels[node.id] || fallbackLines(node);
    const maxChars = Math.max(3, Math.floor((nb.w - 2 * PAD_X) / CHAR_W));
    const room = Math.max(1, Math.floor((nb.h - PAD_Y) / LINE_H));
    lines.slice(0, room).forEach(([role, text], i) => {
      g.appendChild(s("text", { class: `gradmagic-line-${role}`, x: nb.w / 2, y: PAD_Y + i * LINE_H + BASELINE, "text-anchor": "middle" },
        truncate(text, role === "title" ? maxChars - 2 : maxChars)));
    });
    g.appendChild(s("text", { class: "gradmagic-mark", x: nb.w - 5, y: PAD_Y + BASELINE, "text-anchor": "end" },
      STATUS_MARK[status] || "?"));
    const badge = s("text", { class: "gradmagic-badge", x: 5, y: PAD_Y + BASELINE });
    nodeBadges.set(node.id, badge);
    g.appendChild(badge);
    return g;
  }

  function drawLoopGroup(group) {
    const folded = !!group.folded;
    const g = s("g", {
      class: `gradmagic-group ${folded ? "gradmagic-folded" : "gradmagic-unfolded"}`,
      "data-group-id": group.id,
      "aria-label": `${group.label} (${(group.members || []).length} nodes), ${folded ? "folded: press Enter to expand" : "expanded: press Enter to fold"}`,
      transform: `translate(${group.x},${group.y})`,
    });
    g.appendChild(s("rect", { class: "gradmagic-group-box", width: group.w, height: group.h, rx: 6 }));
    const maxChars = Math.max(4, Math.floor((group.w - 2 * PAD_X) / CHAR_W));
    if (folded) {
      const lines = ctx.idx.labels[group.id] || [["title", group.label || group.id], ["detail", `${(group.members || []).length} nodes`]];
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
    return pressable(g, () => setExpanded(ctx.model, group.id, folded));
  }

  function draw() {
    for (const layer of [edgeLayer, groupLayer, nodeLayer, labelLayer]) layer.replaceChildren();
    ctx.nodeEls.clear();
    ctx.groupEls.clear();
    edgeIndex.clear();
    nodeBadges.clear();
    selectedEl = null;
    const L = ctx.idx.layout;
    const hidden = new Set(L.hidden || []);
    for (const group of L.groups || []) {
      const g = group.kind === "module"
        ? drawModuleBox(group, ctx.idx.labels[group.id], () => setExpanded(ctx.model, group.id, !!group.folded))
        : drawLoopGroup(group);
      ctx.groupEls.set(group.id, g);
      groupLayer.appendChild(g);
    }
    const edgeFrag = document.createDocumentFragment();
    for (const e of L.edges || []) {
      const path = s("path", {
        class: "gradmagic-edge", d: (e.points || []).map((p, i) => `${i ? "L" : "M"}${p[0]},${p[1]}`).join(" "),
        "marker-end": `url(#${ctx.uid}-arrow-edge)`, "data-source": e.source, "data-target": e.target, "data-input": e.input,
      });
      const entry = { el: path, points: e.points };
      edgeIndex.set(`${e.source}|${e.target}|${e.input}`, entry);
      if (!edgeIndex.has(`${e.source}|${e.target}`)) edgeIndex.set(`${e.source}|${e.target}`, entry);
      edgeFrag.appendChild(path);
    }
    edgeLayer.appendChild(edgeFrag);
    const nodeFrag = document.createDocumentFragment();
    for (const [id, nb] of Object.entries(L.nodes || {})) {
      const node = ctx.idx.nodes.get(id);
      if (!node || hidden.has(id)) continue;
      const g = drawNode(node, nb);
      ctx.nodeEls.set(id, g);
      nodeFrag.appendChild(g);
    }
    nodeLayer.appendChild(nodeFrag);
    emptyNote.hidden = ctx.idx.nodes.size > 0;
    sizeGraphBox();
  }

  let selectedEl = null;
  function updateSelection() {
    const sel = ctx.selectedId();
    if (selectedEl) {
      selectedEl.classList.remove("gradmagic-selected");
      selectedEl.setAttribute("aria-pressed", "false");
    }
    const gid = ctx.idx.groupOf.get(sel); // a node inside a folded group: its box shows it
    selectedEl = ctx.nodeEls.get(sel) || ctx.groupEls.get(gid) || null;
    if (!selectedEl) return;
    selectedEl.classList.add("gradmagic-selected");
    selectedEl.setAttribute("aria-pressed", "true");
    scrollIntoView(ctx.nodeEls.has(sel) ? ctx.idx.layout.nodes[sel] : (ctx.idx.layout.groups || []).find((g) => g.id === gid));
  }

  /** Pan (never zoom) so that `b` ({x, y, w, h} in layout units) is in view. */
  function scrollIntoView(b) {
    if (!b || !view.fitted) return;
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
    const x = clampAxis(b.x, b.w, view.x, vw);
    const y = clampAxis(b.y, b.h, view.y, vh);
    if (x === view.x && y === view.y) return;
    view.x = x;
    view.y = y;
    applyView();
  }

  function findEdge(source, target, input) {
    const src = ctx.idx.groupOf.get(source) || source;
    const tgt = ctx.idx.groupOf.get(target) || target;
    return edgeIndex.get(`${source}|${target}|${input}`) || edgeIndex.get(`${src}|${tgt}|${input}`) ||
      edgeIndex.get(`${src}|${tgt}`);
  }

  const controls = [
    button("+", "zoom in", () => zoomBy(1.25)),
    button("−", "zoom out", () => zoomBy(0.8)),
    button("Fit", "fit graph to view", () => {
      view.auto = true;
      fit();
    }),
  ];
  function start() {
    if (boxSize() && box.w > 0) {
      view.fitted = true;
      sizeGraphBox();
      fit();
    } else applyView();
  }
  return {
    el: graphBox, controls, draw, updateSelection, scrollIntoView, findEdge, labelLayer, nodeBadges, start,
    refresh() { // a new layout (box opened, another iteration): fitted again
      if (!view.fitted) return;
      view.auto = true;
      fit();
    },
    destroy: () => resizeObserver?.disconnect(),
  };
}

/** Tooltip text of a node. */
function nodeTip(node) {
  const kind = node.kind || "op";
  return [
    `${nodeTitle(node)} — ${KIND_TEXT[kind] || kind}${node.label ? " " + node.label : ""}`,
    `${fmtShape(node.shape)} ${node.dtype || ""}`,
    node.source ? `${fmtWhere(node.source)}: ${node.source.code ?? ""}` : "",
    STATUS_TEXT[node.status] || node.status || "",
  ].filter(Boolean).join("\n");
}

/** The header: verdict, stats, notes. */
function headerPanel(ctx) {
  const el = h("div", { class: "gradmagic-header" });
  function update() {
    const { report: r, nodes } = ctx.idx;
    el.replaceChildren();
    const ok = r.ok !== false;
    const first = r.first_divergence ? nodes.get(r.first_divergence) : null;
    let verdict = ok
      ? "✓ every checked value and gradient agrees with PyTorch"
      : `✗ gradmagic and PyTorch disagree${first ? ` — first at ${nodeTitle(first)}` : ""}`;
    if (ok && nodes.size === 0) verdict = "nothing to check: no tensors recorded";
    let cls = nodes.size === 0 ? "gradmagic-meta" : ok ? "gradmagic-ok" : "gradmagic-bad";
    if (r.verdict && nodes.size) { // the headline every view shows (viz/facts.py)
      verdict = r.verdict.headline;
      cls = { ok: "gradmagic-ok", error: "gradmagic-ok", differ: "gradmagic-bad" }[r.verdict.level] || "gradmagic-meta";
    }
    el.appendChild(h("span", { class: `gradmagic-verdict ${cls}` }, verdict));
    const all = [...nodes.values()];
    const ops = all.filter((n) => n.kind === "op" || n.kind === "opaque").length;
    const saved = all.reduce((acc, n) => acc + (n.saved_bytes || 0), 0);
    if (r.cell && r.cell.number !== null && r.cell.number !== undefined) {
      el.appendChild(h("span", { class: "gradmagic-meta" }, `cell [${r.cell.number}]`));
    }
    el.appendChild(h("span", { class: "gradmagic-meta" }, `${all.length} nodes · ${ops} ops · ${fmtBytes(saved)} saved for backward`));
    if ((r.unsupported || []).length) {
      el.appendChild(h("div", { class: "gradmagic-note" }, `unchecked (no engine rule): ${r.unsupported.join(", ")}`));
    }
    for (const note of r.notes || []) el.appendChild(h("div", { class: "gradmagic-note" }, note));
    if (r.error) el.appendChild(h("div", { class: "gradmagic-note gradmagic-bad" }, `the cell raised ${r.error.type}: ${r.error.message}`));
  }
  return { el, update };
}

/** The details of the selected node: value, local derivative, gradient, saved tensors. */
function detailsPanel(ctx) {
  const el = h("div", { class: "gradmagic-details", "aria-live": "polite" });
  function update() {
    el.replaceChildren();
    const node = ctx.idx.nodes.get(ctx.selectedId());
    if (!node) {
      el.appendChild(h("p", { class: "gradmagic-empty" }, "Click a node (or Tab to it and press Enter) to see its value, local derivative and gradient."));
      return;
    }
    const status = node.status || "unchecked";
    el.appendChild(h("h4", {}, nodeTitle(node), " ",
      h("span", { class: "gradmagic-tag" }, KIND_TEXT[node.kind] || node.kind), " ",
      h("span", { class: `gradmagic-tag gradmagic-status-${status}` }, `${STATUS_MARK[status] || ""} ${status}`)));
    const dl = h("dl");
    const names = (node.aliases || []).filter(Boolean);
    row(dl, "variable", names.length ? code(names.join(", ")) : h("span", { class: "gradmagic-meta" }, "(no name: an intermediate result)"));
    if (node.expr && !names.length) row(dl, "written as", code(node.expr));
    if (node.op || node.label) {
      row(dl, "op", code(node.label || node.op), node.torch_op ? h("span", { class: "gradmagic-meta" }, ` from ${node.torch_op}`) : "");
    }
    if ((node.formulas || []).length) {
      row(dl, "local derivative", h("ul", { class: "gradmagic-formulas" }, node.formulas.map((f) => h("li", {}, code(f)))));
    }
    if (node.source) row(dl, "source", h("span", { class: "gradmagic-meta" }, `${fmtWhere(node.source)}: `), code(node.source.code ?? ""));
    row(dl, "shape · dtype", `${fmtShape(node.shape)} · ${node.dtype || "?"}`, node.requires_grad ? " · requires_grad" : "");
    if (node.value_after) { // an optimizer step changed it after the forward pass used it
      row(dl, "value (used by the forward pass)", pre(fmtValue(node.value)));
      row(dl, "value after the update (opt.step())", pre(fmtValue(node.value_after)));
    } else row(dl, "value", pre(fmtValue(node.value)));
    const saved = node.saved || [];
    if (saved.length) {
      row(dl, "saved for backward", h("ul", { class: "gradmagic-saved" },
        saved.map((v) => h("li", {}, code(v.name), ` ${fmtShape(v.shape)} ${v.dtype || ""} · ${fmtBytes(v.bytes)}`))),
      h("span", { class: "gradmagic-meta" }, `total ${fmtBytes(node.saved_bytes)}`));
    } else if (node.kind === "op") row(dl, "saved for backward", h("span", { class: "gradmagic-meta" }, "nothing"));
    if (node.grad != null || node.torch_grad != null) {
      row(dl, "grad (gradmagic)", pre(fmtValue(node.grad)));
      row(dl, "grad (PyTorch)", pre(fmtValue(node.torch_grad)));
      const err = node.max_abs_err == null ? "" : ` · max |Δ| ${fmtErr(node.max_abs_err)}`;
      row(dl, "verdict", h("span", { class: `gradmagic-status-${status}` }, `${STATUS_MARK[status] || ""} ${STATUS_TEXT[status] || status}`),
        h("span", { class: "gradmagic-meta" }, err));
    } else {
      const why = node.is_leaf
        ? (node.requires_grad ? "None (no backward has reached it yet)" : "None (does not require grad)")
        : "not kept: PyTorch frees non-leaf gradients unless retain_grad() is called";
      row(dl, "grad", h("span", { class: "gradmagic-meta" }, why));
    }
    const call = ctx.idx.calls[ctx.model.get("call") || 0];
    const step = (call?.steps || []).find((st) => st.kind === "node" && st.node === node.id);
    if (step) row(dl, "g in backward", pre(fmtValue(step.grad_output)));
    el.appendChild(dl);
  }
  return { el, update };
}

/** Whether two label rectangles {x, y, w, h} overlap. */
function overlaps(a, b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

/**
 * Step through the backward pass: call selector, ◀ slider ▶, the marks on the graph, the
 * labels on the edges just used and the narration.
 * @param {Object} ctx shared state
 * @param {ReturnType<typeof graphView>} graph
 */
function stepper(ctx, graph) {
  const { model } = ctx;
  const el = h("div", { class: "gradmagic-step", role: "group", "aria-label": "step through backward" });
  const narration = h("div", { class: "gradmagic-narration", "aria-live": "polite" });
  const steps = () => {
    const call = ctx.idx.calls[model.get("call") || 0];
    return call && Array.isArray(call.steps) ? call.steps : [];
  };
  const setStep = (k) => {
    const v = Math.max(-1, Math.min(steps().length - 1, Number.isFinite(k) ? k : -1));
    model.set("step", v);
    model.save_changes();
  };
  const prev = button("◀", "previous backward step", () => setStep(stepOver(steps(), model.get("step"), -1, ctx.idx)), "gradmagic-prev");
  const next = button("▶", "next backward step", () => setStep(stepOver(steps(), model.get("step"), 1, ctx.idx)), "gradmagic-next");
  const slider = h("input", { type: "range", class: "gradmagic-slider", min: "-1", max: "0", step: "1", value: "-1", "aria-label": "backward step" });
  const label = h("span", { class: "gradmagic-step-label" });
  const callSelect = h("select", { class: "gradmagic-call", "aria-label": "backward call to replay" });
  slider.addEventListener("input", () => setStep(Number(slider.value)));
  callSelect.addEventListener("change", () => {
    model.set("call", Number(callSelect.value));
    model.set("step", -1);
    model.save_changes();
  });
  el.append(h("span", { class: "gradmagic-step-title" }, "backward"), callSelect, prev, slider, next, label);

  /** The call selector: calls that kept their steps, of the iteration shown (a loop's other
   * iterations have their own view), and the current call. */
  function updateControls() {
    callSelect.replaceChildren();
    const current = model.get("call") || 0;
    const inLoop = callIterations(ctx.idx.report);
    const shown = ctx.idx.report.iterations?.shown;
    ctx.idx.calls.forEach((c, i) => {
      const other = inLoop.has(i) && inLoop.get(i) !== shown;
      if (i !== current && (other || !Array.isArray(c.steps))) return;
      const where = c.source ? ` (${fmtWhere(c.source)}): ${c.source.code ?? ""}` : "";
      callSelect.appendChild(h("option", { value: String(i) }, truncate(`#${i} ${c.kind}${where}`, 60)));
    });
    callSelect.value = String(current);
    callSelect.hidden = callSelect.options.length < 2;
    const n = steps().length;
    slider.max = String(Math.max(-1, n - 1));
    el.classList.toggle("gradmagic-disabled", n === 0);
    for (const c of [slider, prev, next]) c.disabled = n === 0;
  }

  // Replay marks. "done" marks are applied incrementally (a slider move touches only the
  // steps between the old and the new position); the current step's marks are redone.
  let doneK = -1;
  const doneCount = new Map(); // element -> number of applied steps marking it (groups hold many)
  let currentMarks = [];
  let activeEdges = [];
  let doneCall = null;
  const nodeOrGroup = (id) => ctx.nodeEls.get(id) || ctx.groupEls.get(ctx.idx.groupOf.get(id));
  function setDone(st, i, on) {
    const target = nodeOrGroup(st.node);
    if (!target) return;
    const n = (doneCount.get(target) || 0) + (on ? 1 : -1);
    doneCount.set(target, n);
    target.classList.toggle("gradmagic-done", n > 0);
    const badge = graph.nodeBadges.get(st.node);
    if (badge) badge.textContent = on ? `${i + 1}` : "";
  }
  /** Forget every mark (the graph was redrawn: its elements are new). */
  function reset() {
    doneCount.clear();
    doneK = -1;
    currentMarks = [];
    activeEdges = [];
    doneCall = null;
  }

  function update() {
    const all = steps();
    const call = model.get("call") || 0;
    if (call !== doneCall) {
      for (const [target] of doneCount) target.classList.remove("gradmagic-done");
      for (const badge of graph.nodeBadges.values()) badge.textContent = "";
      doneCount.clear();
      doneK = -1;
      doneCall = call;
    }
    const k = Math.min(model.get("step") ?? -1, all.length - 1);
    slider.value = String(k);
    if (!ctx.idx.calls.length) label.textContent = "no backward call in this cell";
    else if (!all.length) label.textContent = "this call kept only a summary (no steps)";
    else label.textContent = k < 0 ? `not started · ${all.length} steps` : `step ${k + 1} of ${all.length}`;
    for (; doneK < k; doneK++) setDone(all[doneK + 1], doneK + 1, true);
    for (; doneK > k; doneK--) setDone(all[doneK], doneK, false);
    for (const [target, cls] of currentMarks) target.classList.remove(cls);
    currentMarks = [];
    for (const e of activeEdges) e.setAttribute("marker-end", `url(#${ctx.uid}-arrow-edge)`);
    activeEdges = [];
    graph.labelLayer.replaceChildren();
    ctx.root.classList.toggle("gradmagic-replaying", k >= 0);
    if (k < 0) {
      narration.replaceChildren();
      if (all.length) narration.appendChild(h("p", { class: "gradmagic-meta" }, "Press ▶ to replay the backward pass one step at a time."));
      return;
    }
    const mark = (target, cls) => {
      if (!target) return;
      target.classList.add(cls);
      currentMarks.push([target, cls]);
    };
    const st = all[k];
    mark(nodeOrGroup(st.node), "gradmagic-current");
    if (st.kind === "node") {
      const placed = [];
      for (const c of st.contributions || []) {
        const e = graph.findEdge(c.to, st.node, c.input);
        if (e) {
          mark(e.el, "gradmagic-edge-active");
          e.el.setAttribute("marker-end", `url(#${ctx.uid}-arrow-active)`);
          activeEdges.push(e.el);
          graph.labelLayer.appendChild(edgeLabel(e, st, c, placed));
        }
        mark(nodeOrGroup(c.to), "gradmagic-receiving");
      }
    }
    narrate(all, k);
    if (graph.labelLayer.childElementCount) {
      const b = graph.labelLayer.getBBox(); // the labels of this step stay on screen
      graph.scrollIntoView({ x: b.x, y: b.y, w: b.width, h: b.height });
    }
  }

  /** `g × local derivative = contribution` beside the edge just used, placed left or right of
   * it and moved down until it overlaps no label of the same step (`placed`). */
  function edgeLabel(edge, st, c, placed) {
    const folded = st.grad_output === null || st.grad_output === undefined;
    const pts = edge.points || [];
    const i = Math.max(0, Math.floor((pts.length - 1) / 2));
    const a = pts[i] || [0, 0];
    const b = pts[i + 1] || a;
    const x = (a[0] + b[0]) / 2;
    const y = (a[1] + b[1]) / 2;
    const { factor } = splitFormula(c.formula);
    const lines = folded ? [`g × (${c.formula || "local"})`] : [
      factor ? `${previewValue(st.grad_output, 14)} × ${factor}` : `${previewValue(st.grad_output, 14)} → (${c.formula || "local"})`,
      `= ${previewValue(c.value, 22)}`,
    ];
    const width = Math.max(...lines.map((t) => t.length)) * LABEL_CHAR_W + 10;
    const height = lines.length * 13 + 5;
    const rect = { x: placed.length % 2 === 0 ? x - 4 - width : x + 4, y: y - height / 2, w: width, h: height };
    for (let tries = 0; tries < 50 && placed.some((p) => overlaps(p, rect)); tries++) rect.y += 4;
    placed.push(rect);
    const g = s("g", { class: "gradmagic-edge-label", transform: `translate(${rect.x},${rect.y})` });
    g.appendChild(s("rect", { x: 0, y: 0, width, height, rx: 3 }));
    lines.forEach((t, k) => g.appendChild(s("text", { x: width / 2, y: 12 + k * 13, "text-anchor": "middle" }, t)));
    return g;
  }

  const nameOf = (id) => {
    const n = ctx.idx.nodes.get(id);
    return n ? nodeTitle(n) : id;
  };
  /** A collapsed module box this step belongs to (▶ steps over it as one step). */
  function collapsedModule(st) {
    const gid = ctx.idx.groupOf.get(st.node);
    const group = (ctx.idx.layout.groups || []).find((g) => g.id === gid);
    return group && group.kind === "module" && group.folded ? group : null;
  }

  function narrate(all, k) {
    const st = all[k];
    narration.replaceChildren();
    const p = (...c) => h("p", {}, ...c);
    narration.appendChild(h("h4", {}, `Backward step ${k + 1} of ${all.length}`));
    const incoming = incomingContributions(ctx.idx, all, k, st.node);
    const box = collapsedModule(st);
    const folded = (st.kind === "node" && st.grad_output == null) || (st.kind === "hook" && st.before == null);
    if (box) {
      const line = ctx.graph().step_over?.[box.id] || box.label || box.id;
      narration.appendChild(p("Over the collapsed module ", code(box.label || box.module || box.id), " in one step:"));
      narration.appendChild(h("p", { class: "gradmagic-step-over" }, code(line)));
      narration.appendChild(h("p", { class: "gradmagic-meta" }, "Open the box (click it) to step through its ops one at a time."));
    } else if (folded) {
      const gid = ctx.idx.groupOf.get(st.node);
      const group = (ctx.idx.layout.groups || []).find((g) => g.id === gid);
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
      const node = ctx.idx.nodes.get(st.node) || {};
      narration.appendChild(p(code(nameOf(st.node)), node.label && nameOf(st.node) !== node.label ? ` (${node.label})` : "",
        " receives upstream gradient g = ", code(previewValue(st.grad_output, 48))));
      if (incoming.length > 1) narration.appendChild(sumBlock(incoming, st.grad_output, "paths meet here: g is the sum"));
      const ul = h("ul", { class: "gradmagic-contribs" });
      for (const c of st.contributions || []) {
        const { local, factor } = splitFormula(c.formula);
        ul.appendChild(h("li", {}, "to ", code(nameOf(c.to)), ` (input ${c.input}): local derivative `, code(local), "; ",
          factor ? "upstream " : "upstream g through it ", factor ? code(`g × ${factor}`) : "", " = ", code(previewValue(c.value, 48))));
      }
      narration.appendChild(ul);
    } else {
      narration.appendChild(p(code(`${nameOf(st.node)}.grad`), " receives its total:"));
      if (incoming.length > 1) narration.appendChild(sumBlock(incoming, st.added, "paths meet here: the contributions add up"));
      const dl = h("dl", { class: "gradmagic-accum-step" });
      row(dl, "before", pre(previewValue(st.before, 48)));
      row(dl, "+ added", pre(previewValue(st.added, 48)));
      row(dl, "= after", pre(previewValue(st.after, 48)));
      narration.appendChild(dl);
      if (!isZero(st.before)) {
        narration.appendChild(h("p", { class: "gradmagic-warn" }, "⚠ .grad already held a value: backward() adds to it (accumulates) instead of replacing it."));
      }
    }
  }

  function sumBlock(incoming, total, title) {
    const wrap = h("div", { class: "gradmagic-sum" }, h("strong", {}, title));
    const ul = h("ul");
    for (const c of incoming) ul.appendChild(h("li", {}, code(previewValue(c.value)), " via ", code(nameOf(c.from)), ` input ${c.input}`));
    wrap.append(ul, h("div", {}, "sum = ", code(previewValue(total, 48))));
    return wrap;
  }

  return { el, narration, update, updateControls, reset };
}

/** Each leaf's `.grad` over time, and its value updates in a row of their own. */
function timelinePanel(ctx) {
  const el = h("div", { class: "gradmagic-accum" });
  function update() {
    el.replaceChildren();
    const leaves = ctx.idx.report.leaves || [];
    if (!leaves.length) return;
    el.appendChild(h("h4", {}, "Gradient accumulation (.grad of each leaf over time)"));
    for (const leaf of leaves) {
      const rowEl = h("div", { class: "gradmagic-leaf", "data-leaf-id": leaf.id, "data-leaf-name": leaf.name || "" });
      const status = leaf.status || "unchecked";
      rowEl.appendChild(h("div", { class: "gradmagic-leaf-head" },
        code(`${leaf.name || leaf.id}.grad`), ` ${fmtShape(leaf.shape)} ${leaf.dtype || ""} `,
        h("span", { class: `gradmagic-tag gradmagic-status-${status}` }, `${STATUS_MARK[status] || ""} ${status}`),
        " now: ", code(previewValue(leaf.grad, 60, leaf.dtype))));
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
      el.appendChild(rowEl);
    }
  }
  return { el, update };
}

/** One event of a timeline: its kind and cell, then `value` (an update's Δ, else .grad after). */
function timelineItem(ev, value, prefix = "") {
  const where = ev.cell !== null && ev.cell !== undefined ? `[${ev.cell}]` : "";
  const shown = value === undefined || value === null ? "None" : prefix + previewValue(value);
  return h("li", { class: `gradmagic-event gradmagic-event-${ev.kind}`, title: ev.code || "" },
    h("span", { class: "gradmagic-event-kind" }, `${EVENT_TEXT[ev.kind] || ev.kind} ${where}`.trim()),
    h("span", { class: "gradmagic-event-value" }, truncate(shown, 28)));
}

/** Whether the report recorded nothing worth a widget (no tensor, no error, no diagnosis). */
function isEmptyReport(report) {
  return !(report.nodes || []).length && !(report.leaves || []).length && !(report.backward_calls || []).length &&
    !(report.diagnoses || []).length && !report.error && !(report.notes || []).length;
}

// ---------------------------------------------------------------- render

/**
 * Render the widget into `el`: the parts above, wired to the model.
 * @param {{model: Model, el: HTMLElement}} ctx
 * @returns {() => void} cleanup
 */
function render({ model, el }) {
  const root = h("div", { class: "gradmagic-widget", "data-gradmagic": "widget" });
  el.appendChild(root);
  const ctx = {
    model, root,
    uid: `gm${++instanceCounter}-${Math.random().toString(36).slice(2, 8)}`, // marker ids are global
    graph: () => model.get("graph") || {},
    idx: indexGraph(model.get("graph") || {}),
    nodeEls: new Map(), // node id -> <g>
    groupEls: new Map(), // group id -> <g>
    // model.set fires "change:<name>" at once (Backbone, and the standalone shim): the
    // handlers below redraw; save_changes syncs to the kernel.
    select(id) {
      model.set("selected", id);
      model.save_changes();
    },
    selectedId: () => resolveSelected(ctx.idx, model.get("selected")),
    setWide: (wide) => main.classList.toggle("gradmagic-wide", wide),
  };
  const main = h("div", { class: "gradmagic-main" });
  const header = headerPanel(ctx);
  const graph = graphView(ctx);
  const details = detailsPanel(ctx);
  const steps = stepper(ctx, graph);
  const timeline = timelinePanel(ctx);
  const depthSlot = h("span", { class: "gradmagic-depth-slot" });
  const iterationSlot = h("span", { class: "gradmagic-iteration-slot" });
  const toolbar = h("div", { class: "gradmagic-toolbar", role: "toolbar", "aria-label": "graph view" },
    ...graph.controls, depthSlot, iterationSlot,
    h("span", { class: "gradmagic-hint" }, "drag to pan · ctrl + wheel or pinch to zoom · click a node (or Tab + Enter)"));
  const side = h("div", { class: "gradmagic-side" }, steps.narration, details.el);
  main.append(graph.el, side);
  const emptyLine = h("p", { class: "gradmagic-empty-note" }, "gradmagic · no tensors were recorded in this cell.");
  root.append(emptyLine, header.el, toolbar, steps.el, main, timeline.el);
  let diagnoses = null;
  let flow = null;

  function renderAll() {
    ctx.idx = indexGraph(ctx.graph());
    const empty = isEmptyReport(ctx.idx.report);
    emptyLine.hidden = !empty; // a cell without tensors: one line, not an empty graph
    for (const part of [header.el, toolbar, steps.el, main, timeline.el]) part.hidden = empty;
    diagnoses?.remove();
    diagnoses = diagnosisPanel(ctx.idx.report, ctx.idx.nodes, ctx.select);
    if (diagnoses) root.insertBefore(diagnoses, header.el);
    header.update();
    steps.reset();
    graph.draw();
    depthSlot.replaceChildren(...[depthControl(ctx.idx.layout, model)].filter(Boolean));
    iterationSlot.replaceChildren(...[iterationControl(ctx.idx.report, model)].filter(Boolean));
    markDiagnosedNodes(ctx.idx, ctx.nodeEls, ctx.groupEls);
    steps.updateControls();
    graph.updateSelection();
    steps.update();
    details.update();
    timeline.update();
    flow?.remove(); // the gradient-flow panel below the timeline
    flow = gradFlowPanel(ctx.graph().flow);
    if (flow) root.insertBefore(flow, timeline.el);
    graph.refresh();
  }
  const handlers = {
    "change:graph": renderAll,
    "change:selected": () => {
      graph.updateSelection();
      details.update();
    },
    "change:step": () => steps.update(),
    "change:call": () => {
      steps.updateControls();
      steps.update();
      details.update();
    },
  };
  for (const [event, fn] of Object.entries(handlers)) model.on(event, fn);
  renderAll();
  graph.start();
  return () => {
    for (const [event, fn] of Object.entries(handlers)) model.off(event, fn);
    graph.destroy();
    root.remove();
  };
}

export { render };
export default { render };
