// TAMS time in the browser: timestamps are TAI nanoseconds (BigInt: beyond a double's exact integers), timeranges
// half-open [start, end) as the server stores them, and clock time (UTC) by the leap seconds the server gives.
const NS = 1_000_000_000n;

let leapSteps = []; // [[TAI ns of the leap second (BigInt), TAI - UTC after it, in s]], in time order

export function setLeapSeconds(steps) {
  leapSteps = steps.map(([tai, offset]) => [BigInt(tai), offset]);
}

// "sec:nsec" (or a bare "sec"), with an optional sign, as BigInt nanoseconds
export function parseTimestamp(text) {
  const m = /^([-+])?(\d+)(?::(\d+))?$/.exec(text.trim());
  if (!m) throw new Error(`not a TAMS timestamp: ${text}`);
  const ns = BigInt(m[2]) * NS + BigInt(m[3] ?? "0");
  return m[1] === "-" ? -ns : ns;
}

export function formatTimestamp(ns) {
  const negative = ns < 0n;
  const a = negative ? -ns : ns;
  return `${negative ? "-" : ""}${a / NS}:${a % NS}`;
}

// a TAMS timerange's text as {start, end}: half-open BigInt bounds, null where unbounded; null for "()" (never)
export function parseTimerange(text) {
  const t = text.trim();
  if (t === "()" || t === "") return null;
  const m = /^([[(])?([^_\])]*)(?:_([^\])]*))?([\])])?$/.exec(t);
  if (!m) throw new Error(`not a TAMS timerange: ${text}`);
  const [, open, a, b, close] = m;
  let start = a ? parseTimestamp(a) : null;
  let end = b === undefined ? (a ? parseTimestamp(a) : null) : b ? parseTimestamp(b) : null;
  if (start !== null && open === "(") start += 1n;
  if (end !== null && (close === "]" || (b === undefined && a))) end += 1n;
  if (start !== null && end !== null && start >= end) return null;
  return { start, end };
}

export function formatTimerange(start, end) {
  return `[${start === null ? "" : formatTimestamp(start)}_${end === null ? "" : formatTimestamp(end)})`;
}

// TAI - UTC, in seconds, at a TAI instant
function offsetAt(taiNs) {
  let offset = 0;
  for (const [at, after] of leapSteps) if (taiNs >= at) offset = after;
  return offset;
}

// TAI ns -> UTC as ISO 8601 text with nanoseconds ("2023-11-14T22:12:43.000000000Z")
export function utcText(taiNs, digits = 9) {
  const posix = taiNs - BigInt(offsetAt(taiNs)) * NS;
  let seconds = posix / NS;
  let frac = posix % NS;
  if (frac < 0n) {
    frac += NS;
    seconds -= 1n;
  }
  const whole = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  const fraction = digits > 0 ? "." + frac.toString().padStart(9, "0").slice(0, digits) : "";
  return `${whole}${fraction}Z`;
}

// a duration in ns (BigInt or Number) as people read it
export function duration(ns) {
  let s = Number(ns) / 1e9;
  if (s < 1) return `${+(s * 1000).toPrecision(3)} ms`;
  if (s < 120) return `${+s.toFixed(3)} s`;
  const parts = [];
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["min", 60]]) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)} ${unit}`);
      s %= size;
    }
  }
  if (s >= 1 && parts.length < 2) parts.push(`${Math.floor(s)} s`);
  return parts.slice(0, 2).join(" ");
}

// a flow's frame (or sample) rate as a fraction {num, den}, or null
export function rateOf(flow) {
  const rate = flow.essence_parameters?.frame_rate ?? flow.essence_parameters?.sample_rate;
  if (rate?.numerator) return { num: BigInt(rate.numerator), den: BigInt(rate.denominator ?? 1) };
  if (typeof rate === "number") return { num: BigInt(rate), den: 1n };
  return null;
}

// the start of the frame `ns` falls in, frames counted from `origin` at `rate`; and that frame's number
export function frameAt(ns, origin, rate) {
  const offset = ns - origin;
  const frame = (offset * rate.num) / (rate.den * NS);
  return { frame, start: origin + (frame * rate.den * NS) / rate.num };
}
