// A flow's coverage as a timeline: runs and gaps drawn from /flows/{flowId}/coverage at one request per view (the
// resolution is a pixel's width, so a year of segments is a few rows), zoomable from the flow's extent to a frame
// (buttons, the keyboard, the mouse wheel), panned by dragging, with the live edge marked.
import { getJson, withQuery } from "./api.js";
import { duration, formatTimerange, parseTimerange, utcText } from "./time.js";

const SVG = "http://www.w3.org/2000/svg";
const HEIGHT = 56;
const BAR_Y = 8;
const BAR_H = 28;
const MIN_SPAN = 1_000_000n; // a millisecond: below a frame of any rate
const FOLLOW_MS = 10_000;

function svg(name, attrs, parent) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  parent?.appendChild(el);
  return el;
}

export class Timeline {
  // container: an element to draw in; onPick(ns): a click on the timeline (a time to play from)
  constructor(container, flowId, { onPick, onShown } = {}) {
    this.flowId = flowId;
    this.onPick = onPick;
    this.onShown = onShown;
    this.extent = null;
    this.window = null;
    this.edge = null;
    this.coverage = null;
    this.generation = 0;
    container.replaceChildren();
    const controls = document.createElement("div");
    controls.className = "timeline-controls";
    for (const [label, text, action] of [
      ["Zoom in", "+", () => this.zoom(0.5)],
      ["Zoom out", "−", () => this.zoom(2)],
      ["Earlier", "←", () => this.pan(-0.25)],
      ["Later", "→", () => this.pan(0.25)],
      ["Show the whole flow", "Fit", () => this.fit()],
    ]) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = text;
      button.setAttribute("aria-label", label);
      button.title = label;
      button.addEventListener("click", action);
      controls.appendChild(button);
    }
    this.caption = document.createElement("span");
    this.caption.className = "timeline-caption";
    this.caption.setAttribute("aria-live", "polite");
    controls.appendChild(this.caption);
    this.figure = document.createElement("div");
    this.figure.className = "timeline";
    this.figure.tabIndex = 0;
    this.figure.setAttribute("role", "img");
    this.figure.setAttribute("aria-label", "Coverage timeline: + and − zoom, arrows move, 0 shows the whole flow");
    this.gapList = document.createElement("ul");
    this.gapList.className = "gap-list";
    container.append(controls, this.figure, this.gapList);
    this.figure.addEventListener("keydown", (event) => this.key(event));
    this.figure.addEventListener("wheel", (event) => this.wheel(event), { passive: false });
    this.figure.addEventListener("pointerdown", (event) => this.drag(event));
    new ResizeObserver(() => this.window && this.draw()).observe(this.figure);
  }

  get width() {
    return Math.max(200, Math.floor(this.figure.clientWidth || 800));
  }

  // the flow's extent (its timerange: the first segment's start to the last one's end), then the whole of it
  async load(extentText) {
    this.extent = parseTimerange(extentText ?? "()");
    await this.show(this.extent);
  }

  async fit() {
    if (this.extent) await this.show(this.extentWithEdge());
  }

  extentWithEdge() {
    if (!this.extent) return null;
    const end = this.edge !== null && this.edge > this.extent.end ? this.edge : this.extent.end;
    return { start: this.extent.start, end };
  }

  async zoom(factor, at = 0.5) {
    if (!this.window) return;
    const span = this.window.end - this.window.start;
    let next = BigInt(Math.round(Number(span) * factor));
    if (next < MIN_SPAN) next = MIN_SPAN;
    const pivot = this.window.start + BigInt(Math.round(Number(span) * at));
    const start = pivot - BigInt(Math.round(Number(next) * at));
    await this.show({ start, end: start + next });
  }

  async pan(fraction) {
    if (!this.window) return;
    const shift = BigInt(Math.round(Number(this.window.end - this.window.start) * fraction));
    await this.show({ start: this.window.start + shift, end: this.window.end + shift });
  }

  async show(window) {
    if (!window || window.start === null || window.end === null) {
      this.window = null;
      this.coverage = null;
      this.draw();
      return;
    }
    const generation = ++this.generation;
    const resolution = (window.end - window.start) / BigInt(this.width);
    const path = withQuery(`/flows/${this.flowId}/coverage`, {
      timerange: formatTimerange(window.start, window.end),
      resolution: resolution.toString(),
    });
    const found = await getJson(path);
    if (generation !== this.generation) return; // a newer view was asked for meanwhile
    this.window = window;
    this.coverage = found;
    this.extent = parseTimerange(found.extent) ?? this.extent;
    this.draw();
    this.onShown?.(this);
  }

  // the flow's newest segment's end: marked; a view that ends at the edge follows it (redrawn every FOLLOW_MS at most)
  setEdge(ns) {
    const following = this.window && this.edge !== null && this.window.end >= this.edge && ns > this.window.end;
    this.edge = ns;
    if (following && Date.now() - (this.followed ?? 0) >= FOLLOW_MS) {
      this.followed = Date.now();
      this.show({ start: this.window.start, end: ns }).catch(() => {});
    } else if (this.window) this.drawEdge();
  }

  x(ns) {
    const { start, end } = this.window;
    return (Number(ns - start) / Number(end - start)) * this.width;
  }

  draw() {
    this.figure.replaceChildren();
    this.gapList.replaceChildren();
    if (!this.window || !this.coverage) {
      this.caption.textContent = "No segments";
      this.figure.dataset.state = "empty";
      return;
    }
    const width = this.width;
    const root = svg("svg", { width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}` }, this.figure);
    svg("rect", { x: 0, y: BAR_Y, width, height: BAR_H, class: "outside" }, root);
    for (const gap of this.coverage.gaps) {
      const r = parseTimerange(gap);
      const x0 = Math.max(0, this.x(r.start));
      const x1 = Math.min(width, this.x(r.end));
      const rect = svg("rect", { x: x0, y: BAR_Y, width: Math.max(1, x1 - x0), height: BAR_H, class: "gap" }, root);
      rect.dataset.timerange = gap;
      svg("title", {}, rect).textContent = `gap ${gap}: ${duration(r.end - r.start)}`;
      const item = document.createElement("li");
      item.dataset.gap = gap;
      item.textContent = `${utcText(r.start, 3)} – ${utcText(r.end, 3)} (${duration(r.end - r.start)}) ${gap}`;
      this.gapList.appendChild(item);
    }
    for (const run of this.coverage.runs) {
      const r = parseTimerange(run.timerange);
      const x0 = Math.max(0, this.x(r.start));
      const x1 = Math.min(width, this.x(r.end));
      const rect = svg("rect", { x: x0, y: BAR_Y, width: Math.max(1, x1 - x0), height: BAR_H, class: "run" }, root);
      rect.dataset.timerange = run.timerange;
      svg("title", {}, rect).textContent = `${run.segments} segments ${run.timerange}: ${duration(r.end - r.start)}`;
    }
    this.axis(root);
    this.edgeLine = svg("line", { y1: 2, y2: BAR_Y + BAR_H + 4, class: "edge" }, root);
    this.drawEdge();
    const { start, end } = this.window;
    const gaps = this.coverage.gaps.length;
    this.caption.textContent =
      `${utcText(start, 3)} – ${utcText(end, 3)} (${duration(end - start)}): ${this.coverage.segments} segments, ` +
      `${this.coverage.runs.length} runs, ${gaps} gap${gaps === 1 ? "" : "s"}` +
      (this.coverage.resolution > 0 ? ` of ${duration(this.coverage.resolution)} or more` : "") +
      (this.coverage.truncated ? " (zoom in to see every run)" : "");
    this.figure.dataset.state = "drawn";
    this.figure.dataset.timerange = this.coverage.timerange;
  }

  drawEdge() {
    if (!this.edgeLine) return;
    const visible = this.edge !== null && this.edge >= this.window.start && this.edge <= this.window.end;
    this.edgeLine.setAttribute("visibility", visible ? "visible" : "hidden");
    if (visible) {
      const x = Math.min(this.width - 1, Math.max(1, this.x(this.edge)));
      this.edgeLine.setAttribute("x1", String(x));
      this.edgeLine.setAttribute("x2", String(x));
    }
  }

  axis(root) {
    const ticks = 5;
    for (let i = 0; i <= ticks; i++) {
      const x = (i / ticks) * this.width;
      const ns = this.window.start + BigInt(Math.round((Number(this.window.end - this.window.start) * i) / ticks));
      svg("line", { x1: x, x2: x, y1: BAR_Y + BAR_H, y2: BAR_Y + BAR_H + 4, class: "tick" }, root);
      const label = svg("text", { x, y: HEIGHT - 2, class: "tick-label" }, root);
      label.setAttribute("text-anchor", i === 0 ? "start" : i === ticks ? "end" : "middle");
      label.textContent = this.tickText(ns);
    }
  }

  tickText(ns) {
    const span = Number(this.window.end - this.window.start) / 1e9;
    const text = utcText(ns, span < 10 ? 3 : 0);
    return span > 3 * 86400 ? text.slice(0, 16).replace("T", " ") : text.slice(11).replace("Z", "");
  }

  key(event) {
    const actions = {
      "+": () => this.zoom(0.5),
      "=": () => this.zoom(0.5),
      "-": () => this.zoom(2),
      ArrowLeft: () => this.pan(-0.1),
      ArrowRight: () => this.pan(0.1),
      0: () => this.fit(),
    };
    const action = actions[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  }

  wheel(event) {
    if (!this.window) return;
    event.preventDefault();
    const at = event.offsetX / this.width;
    this.zoom(event.deltaY > 0 ? 1.5 : 1 / 1.5, at);
  }

  drag(event) {
    if (!this.window || event.button !== 0) return;
    const from = event.clientX;
    const window = this.window;
    this.figure.setPointerCapture(event.pointerId); // the release comes here, wherever the pointer is then
    let moved = false;
    const move = (e) => {
      if (Math.abs(e.clientX - from) > 3) moved = true;
    };
    const up = (e) => {
      this.figure.removeEventListener("pointermove", move);
      this.figure.removeEventListener("pointerup", up);
      const dx = e.clientX - from;
      if (moved) {
        const shift = BigInt(Math.round((Number(window.end - window.start) * -dx) / this.width));
        this.show({ start: window.start + shift, end: window.end + shift });
      } else if (this.onPick) {
        const rect = this.figure.getBoundingClientRect();
        const at = (e.clientX - rect.left) / this.width;
        this.onPick(window.start + BigInt(Math.round(Number(window.end - window.start) * at)));
      }
    };
    this.figure.addEventListener("pointermove", move);
    this.figure.addEventListener("pointerup", up);
  }
}
