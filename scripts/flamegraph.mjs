#!/usr/bin/env node
// flamegraph.mjs — `perf script` output → folded stacks → an SVG flamegraph,
// in plain Node (no dependencies), for scripts/perf-flamegraph.sh. It does
// what Brendan Gregg's stackcollapse-perf.pl and flamegraph.pl do
// (https://github.com/brendangregg/FlameGraph), which are not packaged for
// Debian: one line per distinct stack, "root;…;leaf COUNT", then one box per
// frame, as wide as its share of the samples, callers below callees.
//
// Frames are coloured by kind, as flamegraph.pl's --color=java does:
//   green  JavaScript (V8 frames named through --perf-basic-prof's /tmp/perf-PID.map)
//   aqua   V8 builtins and stubs (Builtins_* in the node binary; Builtin:, Stub:, … in the map)
//   red/yellow  native code (node, V8, libuv, libc, uWS, npcd's Rust module)
//   orange kernel
// In a browser, click a frame to zoom into it, click the top bar to reset,
// and press Ctrl-F (or "Search") to highlight frames matching a regex.
//
// Usage: perf script -i perf.data | node scripts/flamegraph.mjs [options] > out.svg
//        node scripts/flamegraph.mjs --input perf.stacks --folded out.folded > out.svg
//        node scripts/flamegraph.mjs --from-folded out.folded > out.svg
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const HELP = `Usage: node scripts/flamegraph.mjs [options] < perf-script-output > flamegraph.svg

  --input FILE        read perf script output from FILE (default: stdin)
  --from-folded FILE  read folded stacks ("a;b;c 12" lines) instead
  --folded FILE       also write the folded stacks to FILE
  --title TEXT        title (default "Flame Graph")
  --subtitle TEXT     line under the title
  --width PX          image width (default 1200)
  --min-width PX      omit frames narrower than this (default 0.1)
  --no-comm           do not put the thread name (comm) at the root of each stack
  --include-idle      keep samples of idle threads (epoll_wait, futex waits)
  -h, --help
`;

// ---------------------------------------------------------------- collapse

/** Kind of a frame, from its symbol and the file (dso) it comes from. */
export function frameKind(symbol, dso) {
  if (/\[kernel\.kallsyms\]|^\[kernel/.test(dso) || /^\[k\]/.test(symbol)) return 'kernel';
  // V8's builtins are compiled into the node binary ("Builtins_JSEntry", "Builtins_CallApiCallback").
  if (/^Builtins_/.test(symbol)) return 'builtin';
  if (/\/perf-\d+\.map$/.test(dso)) {
    // V8's names in the perf map: "JS:*fn file:line" (Node 20), older
    // "LazyCompile:*fn", "Function:…"; and builtins, stubs and handlers.
    if (/^(Builtin|BytecodeHandler|Stub|Handler|RegExp|Script):/.test(symbol)) return 'builtin';
    return 'js';
  }
  return 'native';
}

/** Shortens a symbol for display: drops "+0x1f" offsets and argument lists of long C++ names. */
export function cleanSymbol(symbol) {
  let s = symbol.replace(/\+0x[0-9a-f]+$/, '');
  // A C++ name with its argument list: keep the name (as flamegraph.pl's --tidy
  // does). The list is the last balanced "(…)": "node::(anonymous
  // namespace)::PlatformWorkerThread(void*)" → "node::(anonymous namespace)::PlatformWorkerThread".
  const body = s.replace(/ const$/, '');
  if (body.endsWith(')') && !/^(JS|LazyCompile|Function|Builtin|Stub|Handler|RegExp|Script|BytecodeHandler):/.test(s)) {
    let depth = 0;
    for (let i = body.length - 1; i > 0; i--) {
      if (body[i] === ')') depth++;
      else if (body[i] === '(' && --depth === 0) {
        if (/[\w>]$/.test(body.slice(0, i))) s = body.slice(0, i);
        break;
      }
    }
  }
  // file:///work/main/dist/x.js → /work/main/dist/x.js
  s = s.replace(/file:\/\//g, '');
  return s.replace(/;/g, ':');
}

const IDLE = /^(epoll_wait|epoll_pwait|__GI_epoll_pwait|do_epoll_wait|futex_wait|__futex_abstimed_wait_common|futex_wait_queue|schedule|poll_schedule_timeout|do_nanosleep|syscall_exit_to_user_mode\b)/;

/**
 * Folds `perf script` output into a Map of "comm;root;…;leaf" → samples.
 * perf prints each sample as a header line ("comm pid/tid time: period event:")
 * followed by its stack, leaf first ("\taddr symbol+off (dso)"), and a blank line.
 */
export function collapsePerf(text, { comm = true, includeIdle = false } = {}) {
  const folded = new Map();
  let header;
  let frames = [];
  const flush = () => {
    if (header !== undefined && frames.length > 0) {
      const leaf = frames[0];
      if (includeIdle || !IDLE.test(leaf.sym)) {
        const names = frames.slice().reverse().map((f) => `${f.name}${KIND_SUFFIX[f.kind]}`);
        if (comm) names.unshift(header);
        const key = names.join(';');
        folded.set(key, (folded.get(key) ?? 0) + 1);
      }
    }
    header = undefined;
    frames = [];
  };
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      flush();
      continue;
    }
    if (line.startsWith('#')) continue;
    if (!/^\s/.test(line)) {
      flush();
      // "node 12345/12351 [001] 123.456: 10101010 cpu-clock:pppH:" — the comm may contain spaces.
      const m = /^(.+?)\s+\d+(?:\/\d+)?\s/.exec(line);
      header = (m ? m[1] : line.split(/\s/)[0]).replace(/;/g, ':').trim() || 'unknown';
      continue;
    }
    // The dso is the last "(…)" (symbols may hold parentheses: "(anonymous namespace)").
    const m = /^\s*([0-9a-f]+)\s+(.*?)\s+\(([^()]*)\)\s*$/.exec(line) ?? /^\s*([0-9a-f]+)\s*(.*?)\s*$/.exec(line);
    if (!m) continue;
    const sym = m[2] === '' ? '[unknown]' : m[2];
    const dso = m[3] ?? '';
    const kind = frameKind(sym, dso);
    let name = cleanSymbol(sym);
    if (name === '[unknown]' && dso) name = `[unknown] (${dso.replace(/^.*\//, '')})`;
    frames.push({ sym, name, kind });
  }
  flush();
  return folded;
}

const KIND_SUFFIX = { js: '_[j]', builtin: '_[i]', kernel: '_[k]', native: '' };

export function formatFolded(folded) {
  return [...folded].map(([stack, n]) => `${stack} ${n}`).join('\n') + '\n';
}

export function parseFolded(text) {
  const folded = new Map();
  for (const line of text.split('\n')) {
    const m = /^(.*) (\d+)$/.exec(line.trim());
    if (m) folded.set(m[1], (folded.get(m[1]) ?? 0) + Number(m[2]));
  }
  return folded;
}

// ---------------------------------------------------------------- render

function kindOf(name) {
  if (name.endsWith('_[j]')) return ['js', name.slice(0, -4)];
  if (name.endsWith('_[i]')) return ['builtin', name.slice(0, -4)];
  if (name.endsWith('_[k]')) return ['kernel', name.slice(0, -4)];
  return ['native', name];
}

/** A stable pseudo-random number in [0, 1) from a name, so a function keeps its colour between graphs. */
function hash(name) {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return ((h >>> 0) % 1000) / 1000;
}

function colour(kind, name) {
  const v = hash(name);
  switch (kind) {
    case 'js': return `rgb(${Math.round(50 + 60 * v)},${Math.round(170 + 60 * v)},${Math.round(50 + 40 * v)})`;
    case 'builtin': return `rgb(${Math.round(80 + 55 * v)},${Math.round(190 + 40 * v)},${Math.round(190 + 40 * v)})`;
    case 'kernel': return `rgb(${Math.round(220 + 30 * v)},${Math.round(130 + 50 * v)},${Math.round(30 + 30 * v)})`;
    default: return `rgb(${Math.round(205 + 50 * v)},${Math.round(80 + 150 * v)},${Math.round(40 + 30 * v)})`;
  }
}

function escapeXml(s) {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&#39;' })[c]);
}

/** Builds the call tree: every node has its total samples, children by name. */
export function buildTree(folded) {
  const root = { name: 'all', value: 0, children: new Map() };
  for (const [stack, n] of folded) {
    root.value += n;
    let node = root;
    for (const frame of stack.split(';')) {
      let child = node.children.get(frame);
      if (!child) {
        child = { name: frame, value: 0, children: new Map() };
        node.children.set(frame, child);
      }
      child.value += n;
      node = child;
    }
  }
  return root;
}

export function renderSvg(folded, { title = 'Flame Graph', subtitle = '', width = 1200, minWidth = 0.1 } = {}) {
  const root = buildTree(folded);
  const frameHeight = 16;
  const fontSize = 12;
  const charWidth = fontSize * 0.59;
  const pad = 10;
  const top = subtitle ? 60 : 44;
  const bottom = 34;
  const total = root.value || 1;
  const scale = (width - 2 * pad) / total;

  // Lay out frames: x in samples, depth from the bottom.
  const boxes = [];
  let maxDepth = 0;
  const visit = (node, x, depth) => {
    boxes.push({ node, x, depth });
    maxDepth = Math.max(maxDepth, depth);
    let cx = x;
    const kids = [...node.children.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const c of kids) {
      if (c.value * scale >= minWidth) visit(c, cx, depth + 1);
      cx += c.value;
    }
  };
  visit(root, 0, 0);
  const height = top + (maxDepth + 1) * frameHeight + bottom;
  const y = (depth) => height - bottom - (depth + 1) * frameHeight;

  const out = [];
  out.push(`<?xml version="1.0" standalone="no"?>`);
  out.push(`<svg version="1.1" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" data-total="${total}" data-pad="${pad}">`);
  out.push(`<defs><linearGradient id="bg" y1="0" y2="1" x1="0" x2="0"><stop stop-color="#eeeeee" offset="5%"/><stop stop-color="#eeeeb0" offset="95%"/></linearGradient></defs>`);
  out.push(`<style type="text/css">text{font-family:Verdana,sans-serif;font-size:${fontSize}px;fill:#000}.f:hover rect{stroke:#000;stroke-width:0.5;cursor:pointer}#title{text-anchor:middle;font-size:17px}#sub{text-anchor:middle;fill:#555}#details,#matched{font-size:12px}#search,#reset{cursor:pointer}</style>`);
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="url(#bg)"/>`);
  out.push(`<text id="title" x="${width / 2}" y="24">${escapeXml(title)}</text>`);
  if (subtitle) out.push(`<text id="sub" x="${width / 2}" y="44">${escapeXml(subtitle)}</text>`);
  out.push(`<text id="details" x="${pad}" y="${height - 12}"> </text>`);
  out.push(`<text id="reset" x="${pad}" y="24" style="opacity:0">Reset Zoom</text>`);
  out.push(`<text id="search" x="${width - pad - 60}" y="24">Search</text>`);
  out.push(`<text id="matched" x="${width - pad - 160}" y="${height - 12}"> </text>`);
  out.push(`<g id="frames">`);
  for (const { node, x, depth } of boxes) {
    const [kind, name] = depth === 0 ? ['native', 'all'] : kindOf(node.name);
    const w = node.value * scale;
    const pct = ((100 * node.value) / total).toFixed(2);
    const label = `${name} (${node.value} sample${node.value === 1 ? '' : 's'}, ${pct}%)`;
    const fits = Math.floor((w - 6) / charWidth);
    const text = fits < 3 ? '' : name.length <= fits ? name : `${name.slice(0, fits - 2)}..`;
    const fill = depth === 0 ? 'rgb(230,230,230)' : colour(kind, name);
    out.push(
      `<g class="f" data-x="${x}" data-w="${node.value}" data-n="${escapeXml(name)}"><title>${escapeXml(label)}</title>` +
        `<rect x="${(pad + x * scale).toFixed(2)}" y="${y(depth)}" width="${w.toFixed(2)}" height="${frameHeight - 1}" fill="${fill}" rx="2" ry="2"/>` +
        `<text x="${(pad + x * scale + 3).toFixed(2)}" y="${y(depth) + frameHeight - 4.5}">${escapeXml(text)}</text></g>`,
    );
  }
  out.push(`</g>`);
  out.push(`<script type="text/ecmascript"><![CDATA[${ZOOM_SCRIPT.replace('@CHARW@', String(charWidth))}]]></script>`);
  out.push(`</svg>`);
  return out.join('\n') + '\n';
}

// Click to zoom (the frame fills the width; its ancestors stay, greyed out;
// frames outside it are hidden), Reset Zoom, and a regex search.
const ZOOM_SCRIPT = `
(function () {
  var svg = document.documentElement, frames = [].slice.call(document.querySelectorAll('g.f'));
  var total = +svg.getAttribute('data-total'), pad = +svg.getAttribute('data-pad'), width = +svg.getAttribute('width') - 2 * pad;
  var details = document.getElementById('details'), reset = document.getElementById('reset'), matched = document.getElementById('matched');
  function fit(g, x0, span) {
    var x = +g.getAttribute('data-x'), w = +g.getAttribute('data-w'), r = g.querySelector('rect'), t = g.querySelector('text');
    var px = pad + (x - x0) * width / span, pw = w * width / span;
    r.setAttribute('x', px.toFixed(2)); r.setAttribute('width', pw.toFixed(2)); t.setAttribute('x', (px + 3).toFixed(2));
    var name = g.getAttribute('data-n'), fits = Math.floor((pw - 6) / @CHARW@);
    t.textContent = fits < 3 ? '' : name.length <= fits ? name : name.slice(0, fits - 2) + '..';
  }
  function zoom(g) {
    var x0 = +g.getAttribute('data-x'), span = +g.getAttribute('data-w'), y0 = +g.querySelector('rect').getAttribute('y');
    frames.forEach(function (f) {
      var x = +f.getAttribute('data-x'), w = +f.getAttribute('data-w'), y = +f.querySelector('rect').getAttribute('y');
      var inside = x >= x0 && x + w <= x0 + span && y <= y0, ancestor = y > y0 && x <= x0 && x + w >= x0 + span;
      f.style.display = inside || ancestor ? '' : 'none';
      f.style.opacity = ancestor ? 0.5 : 1;
      if (inside || ancestor) fit(f, x0, span);
    });
    reset.style.opacity = 1;
  }
  function unzoom() {
    frames.forEach(function (f) { f.style.display = ''; f.style.opacity = 1; fit(f, 0, total); });
    reset.style.opacity = 0;
  }
  frames.forEach(function (f) {
    f.addEventListener('click', function () { if (+f.getAttribute('data-w') === total) unzoom(); else zoom(f); });
    f.addEventListener('mouseover', function () { details.textContent = f.querySelector('title').textContent; });
    f.addEventListener('mouseout', function () { details.textContent = ' '; });
  });
  reset.addEventListener('click', unzoom);
  function search() {
    var term = prompt('Search for (regular expression):', '');
    if (term === null) return;
    var re = new RegExp(term), sum = 0, seen = [];
    frames.forEach(function (f) {
      var hit = term !== '' && re.test(f.getAttribute('data-n')), r = f.querySelector('rect');
      if (!r.hasAttribute('data-fill')) r.setAttribute('data-fill', r.getAttribute('fill'));
      r.setAttribute('fill', hit ? 'rgb(230,0,230)' : r.getAttribute('data-fill'));
      if (hit) {
        var x = +f.getAttribute('data-x'), w = +f.getAttribute('data-w');
        if (!seen.some(function (s) { return x >= s[0] && x + w <= s[1]; })) { seen.push([x, x + w]); sum += w; }
      }
    });
    matched.textContent = term === '' ? ' ' : 'Matched: ' + (100 * sum / total).toFixed(1) + '%';
  }
  document.getElementById('search').addEventListener('click', search);
  window.addEventListener('keydown', function (e) { if ((e.ctrlKey || e.metaKey) && e.key === 'f') { e.preventDefault(); search(); } });
})();
`;

// ---------------------------------------------------------------- CLI

function main() {
  const { values: o } = parseArgs({
    options: {
      input: { type: 'string' },
      'from-folded': { type: 'string' },
      folded: { type: 'string' },
      title: { type: 'string', default: 'Flame Graph' },
      subtitle: { type: 'string', default: '' },
      width: { type: 'string', default: '1200' },
      'min-width': { type: 'string', default: '0.1' },
      'no-comm': { type: 'boolean', default: false },
      'include-idle': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (o.help) {
    process.stdout.write(HELP);
    return;
  }
  const width = Number(o.width);
  const minWidth = Number(o['min-width']);
  if (!Number.isFinite(width) || width < 200) throw new Error('--width must be a number of pixels, at least 200');
  if (!Number.isFinite(minWidth) || minWidth < 0) throw new Error('--min-width must be a non-negative number');
  let folded;
  if (o['from-folded']) folded = parseFolded(readFileSync(o['from-folded'], 'utf8'));
  else folded = collapsePerf(readFileSync(o.input ?? 0, 'utf8'), { comm: !o['no-comm'], includeIdle: o['include-idle'] });
  if (folded.size === 0) throw new Error('no stacks in the input (is it `perf script` output of a `perf record -g`?)');
  if (o.folded) writeFileSync(o.folded, formatFolded(folded));
  process.stdout.write(renderSvg(folded, { title: o.title, subtitle: o.subtitle, width, minWidth }));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    main();
  } catch (err) {
    process.stderr.write(`flamegraph: ${err.message}\n`);
    process.exit(2);
  }
}
