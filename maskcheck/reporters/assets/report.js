/* maskcheck HTML report: draws each model's layer graph from #maskcheck-graph.
   Layout by dagre (inlined before this script); drawing, collapsing and selection here.
   Test hooks (SPEC 6b): nodes carry data-layer and data-state, edges data-edge-state.
   When every graph is drawn, <html> gets data-rendered="true" and data-render-ms. */
(function () {
  "use strict";
  var started = performance.now();
  var SVG = "http://www.w3.org/2000/svg";
  var EDGE_RANK = { clean: 0, masked: 1, unmasked: 2, mismatched: 3 };
  var EDGE_TEXT = {
    masked: "padding with a mask that lines up", unmasked: "padding and no mask",
    mismatched: "a mask that does not line up with the padding", clean: "no padded axis"
  };
  var STATE_RANK = { ok: 0, suspect: 1, leak: 2 };
  var FANOUT_NAMED = 3;
  var ROLE_TEXT = { creates: "creates mask", consumes: "consumes mask", propagates: "propagates mask",
                    drops: "drops mask", none: "" };
  var data = JSON.parse(document.getElementById("maskcheck-graph").textContent);
  var report = JSON.parse(document.getElementById("maskcheck-report").textContent);

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    for (var key in attrs) { if (attrs[key] !== null && attrs[key] !== undefined) node.setAttribute(key, attrs[key]); }
    if (parent) parent.appendChild(node);
    return node;
  }
  function text(parent, x, y, value, cls) {
    var t = el("text", { x: x, y: y, "class": cls || null }, parent);
    t.textContent = value;
    return t;
  }
  function width(lines) {
    var longest = 0;
    lines.forEach(function (l) { longest = Math.max(longest, l.length); });
    return Math.max(90, Math.min(320, longest * 7 + 22));
  }

  function Graph(container, graph, modelIndex) {
    this.container = container;
    this.graph = graph;
    this.model = modelIndex;
    this.findings = report.models[modelIndex].findings;
    this.nodes = {}; this.groups = {};
    var self = this;
    graph.nodes.forEach(function (n) { self.nodes[n.id] = n; });
    graph.groups.forEach(function (g) { self.groups[g.id] = g; });
    this.collapsed = {};
    graph.groups.forEach(function (g) { if (g.collapsed) self.collapsed[g.id] = true; });
    this.selected = null;
  }

  /* the drawn node standing for `id`: its outermost collapsed group, or itself */
  Graph.prototype.visible = function (id) {
    var n = this.nodes[id], shown = id, g = n ? n.group : this.groups[id].parent;
    while (g) { if (this.collapsed[g]) shown = g; g = this.groups[g].parent; }
    return shown;
  };
  Graph.prototype.groupState = function (gid) {
    var worst = this.groups[gid].state || "ok", self = this;
    this.graph.nodes.forEach(function (n) {
      var g = n.group;
      while (g) {
        if (g === gid && STATE_RANK[n.state] > STATE_RANK[worst]) worst = n.state;
        g = self.groups[g].parent;
      }
    });
    return worst;
  };
  Graph.prototype.members = function (gid) {
    var count = 0, self = this;
    this.graph.nodes.forEach(function (n) {
      for (var g = n.group; g; g = self.groups[g].parent) { if (g === gid) { count++; break; } }
    });
    return count;
  };

  Graph.prototype.draw = function () {
    var self = this, g = new dagre.graphlib.Graph({ compound: true });
    g.setGraph({ rankdir: "TB", nodesep: 22, ranksep: 34, edgesep: 10, marginx: 14, marginy: 14 });
    g.setDefaultEdgeLabel(function () { return {}; });
    var shownGroups = {}, fanout = {}, maskFrom = {};
    /* a mask input passed to many layers (padding_mask to every encoder block) is named on
       each of them instead of drawn as a fan of edges across the graph */
    this.graph.edges.forEach(function (e) { if (e.role) fanout[e.from] = (fanout[e.from] || 0) + 1; });
    this.graph.edges.forEach(function (e) {
      if (e.role && fanout[e.from] >= FANOUT_NAMED) {
        e.named = true;
        (maskFrom[e.to] = maskFrom[e.to] || []).push(self.nodes[e.from].name);
      }
    });
    this.graph.nodes.forEach(function (n) {
      var v = self.visible(n.id);
      if (v !== n.id) { shownGroups[v] = true; return; }
      var lines = [n.name, n["class"] + (n.shape ? " " + n.shape : ""), ROLE_TEXT[n.mask] || ""];
      if (maskFrom[n.id]) lines[2] = (lines[2] ? lines[2] + " " : "mask ") + "from " + maskFrom[n.id].join(", ");
      g.setNode(n.id, { width: width(lines), height: 54, item: n, lines: lines });
      if (n.group) g.setParent(n.id, n.group);
    });
    Object.keys(shownGroups).forEach(function (gid) {
      var grp = self.groups[gid];
      var lines = ["\u25B8 " + grp.name, (grp.kind === "repeat" ? "repeated blocks, " : "nested model, ")
                   + self.members(gid) + " layers", "click to expand"];
      g.setNode(gid, { width: width(lines), height: 54, group: grp, lines: lines });
      if (grp.parent) g.setParent(gid, grp.parent);
    });
    this.graph.groups.forEach(function (grp) {  /* expanded groups holding something drawn */
      if (self.collapsed[grp.id] || self.visible(grp.id) !== grp.id) return;
      var holds = self.graph.nodes.some(function (n) {
        for (var p = n.group; p; p = self.groups[p].parent) { if (p === grp.id) return true; }
        return false;
      });
      if (!holds) return;
      g.setNode(grp.id, { cluster: grp, paddingTop: 26 });
      if (grp.parent) g.setParent(grp.id, grp.parent);
    });
    var merged = {};
    this.graph.edges.forEach(function (e) {
      var a = self.visible(e.from), b = self.visible(e.to);
      if (a === b || e.named) return;
      var key = a + "\u2192" + b, old = merged[key];
      if (!old || EDGE_RANK[e.state] > EDGE_RANK[old.state]) {
        merged[key] = { from: a, to: b, state: e.state, shape: e.shape, role: e.role, count: (old ? old.count : 0) + 1 };
      } else { old.count++; }
    });
    Object.keys(merged).forEach(function (key) {
      var e = merged[key];
      var named = e.state === "unmasked" || e.state === "mismatched";  /* dagre keeps room for the word */
      g.setEdge(e.from, e.to, named ? { edge: e, width: e.state.length * 6 + 4, height: 12,
                                        labelpos: "r", labeloffset: 4 } : { edge: e });
    });
    dagre.layout(g);
    this.render(g);
  };

  Graph.prototype.render = function (g) {
    var self = this, info = g.graph();
    this.container.textContent = "";
    var svg = el("svg", { "class": "mask-graph", width: Math.ceil(info.width), height: Math.ceil(info.height),
                          viewBox: "0 0 " + Math.ceil(info.width) + " " + Math.ceil(info.height),
                          role: "group", "aria-label": "layer graph: layers are buttons" }, this.container);
    var defs = el("defs", {}, svg);
    Object.keys(EDGE_RANK).forEach(function (state) {
      var m = el("marker", { id: "arrow-" + self.model + "-" + state, viewBox: "0 0 10 10", refX: 9, refY: 5,
                             markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
      el("path", { d: "M 0 0 L 10 5 L 0 10 z", "class": "arrow-" + state }, m);
    });
    var clusters = el("g", { "class": "clusters" }, svg);
    var edges = el("g", { "class": "edges" }, svg);
    var nodes = el("g", { "class": "nodes" }, svg);
    g.nodes().forEach(function (id) {
      var d = g.node(id);
      if (!d || !d.cluster) return;
      var c = el("g", { "class": "cluster", "data-group": id, "data-layer-group": d.cluster.layer }, clusters);
      /* dagre leaves a rank's gap above a cluster: its title goes there, inside the frame */
      el("rect", { x: d.x - d.width / 2, y: d.y - d.height / 2 - 20, width: d.width, height: d.height + 20, rx: 6 }, c);
      var label = el("g", { "class": "cluster-label", tabindex: 0, role: "button",
                            "aria-label": "collapse " + d.cluster.name }, c);
      text(label, d.x - d.width / 2 + 8, d.y - d.height / 2 - 6,
           "\u25BE " + d.cluster.name + (d.cluster.kind === "repeat" ? " (repeated blocks)" : " (nested model)"));
      self.activate(label, function () { self.collapsed[id] = true; self.draw(); });
    });
    g.edges().forEach(function (ref) {
      var d = g.edge(ref), e = d.edge, pts = d.points || [];
      if (!pts.length) return;
      var path = "M " + pts.map(function (p) { return p.x.toFixed(1) + " " + p.y.toFixed(1); }).join(" L ");
      var line = el("path", { "class": "edge", d: path, "data-edge-state": e.state,
                              "data-from": self.layerOf(e.from), "data-to": self.layerOf(e.to),
                              "marker-end": "url(#arrow-" + self.model + "-" + e.state + ")" }, edges);
      var title = el("title", {}, line);
      title.textContent = e.state + ": " + EDGE_TEXT[e.state] + (e.shape ? " " + e.shape : "")
        + (e.role ? " (passed as " + e.role + ")" : "") + (e.count > 1 ? ", " + e.count + " tensors" : "");
      if (d.width) {  /* the state in words, not only colour, where dagre made room for it */
        text(edges, d.x - d.width / 2 + 2, d.y + 4, e.state, "edge-label");
      }
    });
    g.nodes().forEach(function (id) {
      var d = g.node(id);
      if (!d || d.cluster) return;
      var item = d.item, grp = d.group;
      var state = item ? item.state : self.groupState(id);
      var attrs = { "class": "node" + (grp ? " group-node" : ""), tabindex: 0, role: "button",
                    "data-state": state, "data-node": id,
                    "data-layer": item ? item.layer : (grp.layer || null),
                    "data-group": grp ? id : null,
                    "data-kind": item ? item.kind : grp.kind,
                    "data-mask": item ? item.mask : null,
                    transform: "translate(" + (d.x - d.width / 2).toFixed(1) + "," + (d.y - d.height / 2).toFixed(1) + ")" };
      var label = d.lines.filter(Boolean).join(", ") + (state !== "ok" ? ", " + state : "");
      attrs["aria-label"] = label;
      var node = el("g", attrs, nodes);
      el("rect", { "class": "box", width: d.width, height: d.height, rx: 5 }, node);
      text(node, 8, 17, d.lines[0]);
      text(node, 8, 32, d.lines[1], "sub");
      if (d.lines[2]) text(node, 8, 47, d.lines[2], "sub role");
      if (state !== "ok") text(node, d.width - 6, 14, state === "leak" ? "\u26A0 LEAK" : "? SUSPECT", "badge")
        .setAttribute("text-anchor", "end");
      var title = el("title", {}, node);
      title.textContent = label;
      if (id === self.selected) node.classList.add("selected");
      self.activate(node, function () {
        if (grp) { delete self.collapsed[id]; self.draw(); return; }
        self.select(id, true);
      });
    });
  };

  Graph.prototype.layerOf = function (id) {
    if (this.nodes[id]) return this.nodes[id].layer;
    return this.groups[id].layer || id;
  };
  Graph.prototype.activate = function (target, action) {
    target.addEventListener("click", function (ev) { ev.stopPropagation(); action(); });
    target.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); action(); }
    });
  };

  /* select node `id` (a layer): highlight it and its findings, describe it */
  Graph.prototype.select = function (id, fromGraph) {
    this.selected = id;
    var section = this.container.closest("section.model");
    section.querySelectorAll(".node.selected").forEach(function (n) { n.classList.remove("selected"); });
    var drawn = section.querySelector('.node[data-node="' + id + '"]');
    if (drawn) drawn.classList.add("selected");
    var n = this.nodes[id], self = this;
    var items = section.querySelectorAll(".finding");
    var first = null;
    items.forEach(function (li) {
      var mine = n && n.findings.indexOf(+li.dataset.finding) >= 0;
      li.classList.toggle("selected", mine);
      if (mine && !first) first = li;
    });
    if (first && fromGraph) first.scrollIntoView({ block: "nearest" });
    if (drawn && !fromGraph) drawn.scrollIntoView({ block: "nearest", inline: "nearest" });
    var details = section.querySelector(".details");
    if (!details || !n) return;
    var ins = this.graph.edges.filter(function (e) { return e.to === id; });
    var outs = this.graph.edges.filter(function (e) { return e.from === id; });
    function states(list, key) {
      return list.map(function (e) { return self.nodes[e[key]].name + " (" + e.state + ")"; }).join(", ") || "none";
    }
    details.textContent = "";
    var h = document.createElement("p");
    h.innerHTML = "";
    h.textContent = n.layer + " \u2014 " + n["class"] + " " + n.shape + "; mask: " + n.mask
      + "; from: " + states(ins, "from") + "; to: " + states(outs, "to")
      + "; " + (n.findings.length ? n.findings.length + " finding(s)" : "no findings");
    details.appendChild(h);
  };

  /* a finding was clicked: show its layer (expanding what hides it) */
  Graph.prototype.reveal = function (findingIndex) {
    var self = this, target = null, finding = this.findings[findingIndex];
    var own = finding && finding.path ? finding.path.join("/") : null;  /* its own layer first, */
    this.graph.nodes.forEach(function (n) { if (!target && n.layer === own) target = n; });
    this.graph.nodes.forEach(function (n) {  /* else a layer of a finding folded under it */
      if (!target && n.findings.indexOf(findingIndex) >= 0) target = n;
    });
    if (!target) return;
    var changed = false;
    for (var g = target.group; g; g = this.groups[g].parent) {
      if (this.collapsed[g]) { delete this.collapsed[g]; changed = true; }
    }
    if (changed) this.draw();
    this.select(target.id, false);
  };

  var graphs = {};
  document.querySelectorAll(".graph[data-model]").forEach(function (container) {
    var index = +container.dataset.model, graph = data.models[index];
    if (!graph) return;
    var view = new Graph(container, graph, index);
    graphs[index] = view;
    view.draw();
  });
  document.querySelectorAll(".finding").forEach(function (li) {
    function go() {
      var view = graphs[+li.dataset.model];
      li.parentNode.querySelectorAll(".finding.selected").forEach(function (x) { x.classList.remove("selected"); });
      li.classList.add("selected");
      if (view) view.reveal(+li.dataset.finding);
    }
    li.addEventListener("click", function (ev) { if (ev.target.closest("summary")) return; go(); });
    li.addEventListener("keydown", function (ev) {
      if ((ev.key === "Enter" || ev.key === " ") && ev.target === li) { ev.preventDefault(); go(); }
    });
  });
  document.querySelectorAll(".graph-pane").forEach(function (pane) {
    var graph = pane.querySelector(".graph"), index = +graph.dataset.model;
    pane.querySelector(".fit").addEventListener("click", function (ev) {
      graph.classList.toggle("fit");
      ev.target.textContent = graph.classList.contains("fit") ? "actual size" : "fit to width";
    });
    pane.querySelector(".expand-all").addEventListener("click", function () {
      var view = graphs[index];
      if (view) { view.collapsed = {}; view.draw(); }
    });
  });
  var root = document.documentElement, themes = ["auto", "light", "dark"];
  var toggle = document.querySelector(".theme-toggle");
  if (toggle) toggle.addEventListener("click", function () {
    var next = themes[(themes.indexOf(root.dataset.theme) + 1) % themes.length];
    root.dataset.theme = next;
    toggle.textContent = "theme: " + next;
  });
  root.dataset.renderMs = (performance.now() - started).toFixed(1);
  root.dataset.rendered = "true";
})();
