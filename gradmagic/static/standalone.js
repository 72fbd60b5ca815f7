// gradmagic standalone page boot (file://, no server, no network).
//
// gradmagic.viz.standalone inlines this file right after graph.js in ONE module script,
// so `render` below is graph.js's render. Each report's data sits in a
// <script type="application/json" class="gradmagic-data"> element; a tiny model shim
// with anywidget's get/set/on/off/save_changes drives the same front end as in Jupyter.

/**
 * A Backbone-like model over a plain object: set() fires "change:<name>" at once.
 * Expanding a folded group swaps in a layout computed in Python beforehand
 * (`layouts` maps sorted group ids joined by "," to a layout; "*" = all expanded).
 * With module boxes (`nearest`), a combination that was not precomputed shows the nearest
 * precomputed one, and `expanded` becomes what is shown.
 * @param {Object} state initial trait values
 * @param {Object<string, Object>} layouts
 * @param {boolean} [nearest]
 * @param {Object<string, Object>} [iterations] a training loop's other iterations
 *   ({graph, layouts, expanded} by iteration index; the `iteration` trait picks one)
 * @returns {import("./graph.js").Model}
 */
function makeModel(state, layouts, nearest = false, iterations = {}) {
  const listeners = new Map();
  const emit = (event) => (listeners.get(event) || []).slice().forEach((cb) => cb());
  const views = { ...iterations, [String(state.graph?.report?.iterations?.shown ?? "")]: { graph: state.graph, layouts, expanded: state.expanded } };
  const model = {
    get: (name) => state[name],
    set(name, value) {
      if (JSON.stringify(state[name]) === JSON.stringify(value)) return;
      state[name] = value;
      emit(`change:${name}`);
      const view = name === "iteration" ? views[String(value)] : null;
      if (view) { // another iteration of a training loop: its own graph, precomputed
        layouts = view.layouts || {};
        nearest = Array.isArray(view.expanded);
        Object.assign(state, { graph: view.graph, expanded: view.expanded || [], call: view.graph.start_call || 0, step: -1 });
        emit("change:graph");
        return;
      }
      if (name === "expanded") {
        let key = [...value].sort().join(",");
        if (nearest && !layouts[key]) {
          key = nearestKey(layouts, value);
          state.expanded = key ? key.split(",") : [];
        }
        const layout = layouts[key] || (value.length ? layouts["*"] : layouts[""]);
        if (layout) {
          state.graph = { ...state.graph, layout: layout.layout, labels: layout.labels };
          emit("change:graph");
        }
      }
    },
    on(event, cb) {
      if (!listeners.has(event)) listeners.set(event, []);
      listeners.get(event).push(cb);
    },
    off(event, cb) {
      const list = listeners.get(event) || [];
      const i = list.indexOf(cb);
      if (i >= 0) list.splice(i, 1);
    },
    save_changes() {},
  };
  return model;
}

/** The precomputed key whose open ids differ least from `ids`. */
function nearestKey(layouts, ids) {
  const want = new Set(ids);
  let best = null;
  let bestCost = Infinity;
  for (const key of Object.keys(layouts)) {
    if (key === "*") continue;
    const have = key ? key.split(",") : [];
    const cost = have.filter((id) => !want.has(id)).length + [...want].filter((id) => !have.includes(id)).length;
    if (cost < bestCost) [best, bestCost] = [key, cost];
  }
  return best;
}

function bootGradmagic() {
  for (const script of document.querySelectorAll("script.gradmagic-data")) {
    performance.mark(`gradmagic:parse-start:${script.dataset.mount}`);
    const data = JSON.parse(script.textContent);
    performance.measure(`gradmagic:parse:${script.dataset.mount}`, `gradmagic:parse-start:${script.dataset.mount}`);
    const mount = document.getElementById(script.dataset.mount);
    if (!mount) continue;
    const model = makeModel(
      { graph: data.graph, selected: "", step: -1, call: data.graph.start_call || 0, expanded: data.expanded || [], iteration: -1 },
      data.layouts || {},
      Array.isArray(data.expanded),
      data.iterations || {},
    );
    performance.mark(`gradmagic:render-start:${script.dataset.mount}`);
    render({ model, el: mount });
    performance.measure(`gradmagic:render:${script.dataset.mount}`, `gradmagic:render-start:${script.dataset.mount}`);
    mount.dataset.rendered = "true";
    // the interactive view is up: fold the static copy away (it stays for printing)
    const fallback = document.getElementById(script.dataset.static);
    if (fallback) fallback.open = false;
  }
}

bootGradmagic();
