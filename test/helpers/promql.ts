/**
 * The metric selectors of a PromQL expression, found by a small lexer (not a
 * parser): enough to check that the rules and the dashboard name only
 * metrics that exist. Strings, label matchers, range and subquery brackets,
 * grouping lists (by, without, on, ignoring, group_left, group_right),
 * numbers, Grafana variables ($job, ${x}) and keywords are skipped; an
 * identifier followed by "(" is a function or an aggregation; any other
 * identifier is a metric name, with its {matchers} when it has them.
 *
 *   selectors('sum by (le) (rate(x_bucket{job="a"}[5m])) / y')
 *   // [{ name: 'x_bucket', matchers: 'job="a"' }, { name: 'y', matchers: '' }]
 */

export interface Selector {
  readonly name: string;
  /** The text between the braces, '' without braces. */
  readonly matchers: string;
}

type Token = { kind: 'ident' | 'string' | 'number' | 'var' | 'punct'; text: string; start: number; end: number };

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan', 'atan2']);
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

function lex(expr: string): Token[] {
  const tokens: Token[] = [];
  const re = /\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`|\$\{[^}]*\}|\$[A-Za-z_]\w*|(?:\d+(?:ms|s|m|h|d|w|y))+(?![\w:])|[A-Za-z_:][\w:]*|0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[^\s]/gy;
  for (let m = re.exec(expr); m !== null && m[0] !== ''; m = re.exec(expr)) {
    const text = m[0];
    const start = m.index;
    const end = start + text.length;
    if (/^\s/.test(text) || text.startsWith('#')) continue;
    const c = text[0]!;
    // Durations (offset 5m) lex as numbers.
    const kind = c === '"' || c === "'" || c === '`' ? 'string' : c === '$' ? 'var' : /[A-Za-z_:]/.test(c) ? 'ident' : /[\d.]/.test(c) && text !== '.' ? 'number' : 'punct';
    tokens.push({ kind, text, start, end });
  }
  return tokens;
}

/** Index of the token closing the bracket opened at `i` (strings are single tokens, so brackets inside them do not count). */
function closing(tokens: Token[], i: number, open: string, close: string, expr: string): number {
  let depth = 0;
  for (let j = i; j < tokens.length; j++) {
    if (tokens[j]!.kind !== 'punct') continue;
    if (tokens[j]!.text === open) depth++;
    else if (tokens[j]!.text === close && --depth === 0) return j;
  }
  throw new Error(`unbalanced "${open}" in PromQL: ${expr}`);
}

/** Every metric selector of `expr`, in order. */
export function selectors(expr: string): Selector[] {
  const tokens = lex(expr);
  const out: Selector[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.kind === 'punct' && t.text === '[') {
      i = closing(tokens, i, '[', ']', expr);
      continue;
    }
    if (t.kind === 'punct' && t.text === '{') {
      // A selector without a metric name ({__name__=~"..."}): not used here.
      i = closing(tokens, i, '{', '}', expr);
      continue;
    }
    if (t.kind !== 'ident') continue;
    const next = tokens[i + 1];
    const word = t.text.toLowerCase();
    if (GROUPING.has(word)) {
      if (next?.kind === 'punct' && next.text === '(') i = closing(tokens, i + 1, '(', ')', expr);
      continue;
    }
    if (KEYWORDS.has(word)) continue;
    if (next?.kind === 'punct' && next.text === '(') continue; // a function or an aggregation
    if (next?.kind === 'ident' && (next.text === 'by' || next.text === 'without')) continue; // sum by (…) (…)
    let matchers = '';
    if (next?.kind === 'punct' && next.text === '{') {
      const j = closing(tokens, i + 1, '{', '}', expr);
      matchers = expr.slice(next.end, tokens[j]!.start).trim();
      i = j;
    }
    out.push({ name: t.text, matchers });
  }
  return out;
}

/** The distinct metric names of `expr`. */
export function metricNames(expr: string): string[] {
  return [...new Set(selectors(expr).map((s) => s.name))];
}

/**
 * The PromQL part of a Grafana Prometheus variable query:
 * `label_values(METRIC_OR_SELECTOR, label)` gives the selector,
 * `query_result(EXPR)` the expression, `label_values(label)` and
 * `label_names()` none.
 */
export function variableQueryExpr(query: string): string | undefined {
  const q = query.trim();
  const lv = /^label_values\(\s*(.+?)\s*,\s*[A-Za-z_]\w*\s*\)$/s.exec(q);
  if (lv) return lv[1];
  const qr = /^query_result\(\s*(.+)\s*\)$/s.exec(q);
  if (qr) return qr[1];
  if (/^label_values\(\s*[A-Za-z_]\w*\s*\)$/.test(q) || /^label_names\(.*\)$/.test(q) || /^metrics\(.*\)$/.test(q)) return undefined;
  throw new Error(`unknown Grafana variable query: ${query}`);
}
