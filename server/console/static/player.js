// Play a timerange of a flow from the server's own HLS playlist with hls.js (served by this server: /console/assets/
// vendor/), and show the time of what is on screen: the segment it is in, from the API, and the offset into it,
// snapped to the flow's frame (or sample) rate, in TAMS time and in UTC.
import { authHeaders, getJson, page, request, withQuery } from "./api.js";
import { formatTimerange, formatTimestamp, frameAt, parseTimerange, rateOf, utcText } from "./time.js";

const PLAYER_URL = "/console/assets/vendor/hls.min.js";
const MAX_SEGMENTS = 10_000; // an hour of 0.4-s segments
let loading = null;

function loadHls() {
  if (window.Hls) return Promise.resolve(window.Hls);
  loading ??= new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = PLAYER_URL;
    script.onload = () => resolve(window.Hls);
    script.onerror = () => reject(new Error("the player (hls.js) could not be loaded from this server"));
    document.head.appendChild(script);
  });
  return loading;
}

export class Player {
  constructor(container, flow) {
    this.flow = flow;
    this.rate = rateOf(flow);
    this.hls = null;
    this.segments = [];
    container.replaceChildren();
    this.video = document.createElement("video");
    this.video.controls = true;
    this.video.muted = true; // browsers let a muted video start without a gesture
    this.video.playsInline = true;
    this.video.setAttribute("aria-label", `Player of ${flow.label ?? flow.id}`);
    this.timecode = document.createElement("div");
    this.timecode.className = "timecode";
    this.timecode.setAttribute("aria-live", "off");
    this.status = document.createElement("p");
    this.status.className = "player-status";
    this.status.setAttribute("role", "status");
    container.append(this.video, this.timecode, this.status);
    this.video.addEventListener("timeupdate", () => this.showTime(this.video.currentTime));
    this.video.addEventListener("error", () => this.fail(`media error ${this.video.error?.code ?? ""}`));
    if (this.video.requestVideoFrameCallback) {
      const frame = (_now, metadata) => {
        this.showTime(metadata.mediaTime);
        this.video.requestVideoFrameCallback(frame);
      };
      this.video.requestVideoFrameCallback(frame);
    }
  }

  // play `range` ({start, end}, BigInt ns) of the flow
  async play(range) {
    this.destroy();
    this.status.textContent = "Loading…";
    delete this.video.dataset.error;
    const text = formatTimerange(range.start, range.end);
    this.range = text;
    this.video.dataset.timerange = text;
    // the segments the (video) playlist lists, in the same order: the fragment a frame is in names its segment
    const timed = await this.timedFlow();
    this.rate = rateOf(timed);
    this.segments = [];
    let next = withQuery(`/flows/${timed.id}/segments`, { timerange: text, limit: 1000 });
    while (next && this.segments.length < MAX_SEGMENTS) {
      const found = await page(next);
      this.segments.push(...found.items.map((s) => parseTimerange(s.timerange)));
      next = found.next;
    }
    if (this.segments.length === 0) {
      this.status.textContent = `No segments in ${text}`;
      return;
    }
    const Hls = await loadHls();
    const playlist = withQuery(`/flows/${this.flow.id}/playlist.m3u8`, { timerange: text });
    const headers = authHeaders();
    if (Hls.isSupported()) {
      this.hls = new Hls({
        enableWorker: false, // a worker from a blob: URL: the page's policy allows scripts from its origin only
        xhrSetup: (xhr, url) => {
          if (new URL(url, location.href).origin === location.origin)
            for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
        },
      });
      this.hls.on(Hls.Events.ERROR, (_event, data) => {
        if (data.fatal) this.fail(`${data.type}: ${data.details}${data.response ? ` (${data.response.code})` : ""}`);
      });
      this.hls.on(Hls.Events.MANIFEST_PARSED, () => {
        this.status.textContent = `Playing ${text}`;
        this.video.play().catch((e) => this.fail(String(e)));
      });
      this.hls.loadSource(playlist);
      this.hls.attachMedia(this.video);
    } else {
      this.fail("this browser cannot play HLS through Media Source Extensions");
    }
  }

  // the flow whose segments the picture is made of: the flow itself, or a multi flow's first video member (the
  // master playlist's first variant)
  async timedFlow() {
    if (!this.flow.format?.endsWith(":multi") || !this.flow.flow_collection?.length) return this.flow;
    for (const member of this.flow.flow_collection) {
      const doc = await getJson(`/flows/${member.id}`);
      if (doc.format?.endsWith(":video")) return doc;
    }
    return this.flow;
  }

  fail(why) {
    this.video.dataset.error = why;
    this.status.textContent = `Cannot play: ${why}`;
  }

  // the fragment of the playing level at media time t, and the segment it is
  fragmentAt(t) {
    const level = this.hls?.levels?.[this.hls.currentLevel >= 0 ? this.hls.currentLevel : 0];
    const details = level?.details;
    if (!details) return null;
    for (const frag of details.fragments) {
      if (t >= frag.start && t < frag.start + frag.duration) {
        const segment = this.segments[frag.sn - details.startSN];
        return segment ? { frag, segment } : null;
      }
    }
    return null;
  }

  showTime(t) {
    const found = this.fragmentAt(t);
    if (!found) return;
    const { frag, segment } = found;
    let ns = segment.start + BigInt(Math.round((t - frag.start) * 1e9));
    if (ns >= segment.end) ns = segment.end - 1n;
    if (ns < segment.start) ns = segment.start;
    let frame = null;
    if (this.rate) ({ frame, start: ns } = frameAt(ns, segment.start, this.rate));
    this.timecode.dataset.tams = ns.toString();
    this.timecode.dataset.segment = formatTimerange(segment.start, segment.end);
    this.timecode.dataset.mediaTime = String(t);
    this.timecode.textContent =
      `TAMS ${formatTimestamp(ns)} · UTC ${utcText(ns, 3)}` +
      (frame === null ? "" : ` · ${this.flow.format?.endsWith(":audio") ? "sample" : "frame"} ${frame}`) +
      ` of segment ${this.timecode.dataset.segment}`;
  }

  destroy() {
    this.hls?.destroy();
    this.hls = null;
  }
}

// null when the server says the flow plays (its playlist of no time answers), else why not
export async function playable(flow) {
  if (!/:(video|audio|multi)$/.test(flow.format ?? "")) return "only video, audio and multi flows play";
  try {
    await request(`/flows/${flow.id}/playlist.m3u8?timerange=()`);
    return null;
  } catch (e) {
    return e.summary ?? String(e);
  }
}
