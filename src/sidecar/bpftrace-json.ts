/**
 * Reads the records `bpftrace -f json` prints, one JSON object per line
 * (bpftrace 0.17): printf output, maps, hist()/lhist() maps, stats()/avg()
 * maps, and bookkeeping records. A map keyed by several values arrives with
 * its keys joined by commas ("in,8080"); the programs in bpf/ only use
 * numbers and fixed words as keys, so splitting on commas is exact for them.
 */

/** One bucket of a hist() or lhist() map; `min` is missing below zero, `max` in lhist's overflow bucket. */
export interface HistBucket {
  readonly min?: number;
  readonly max?: number;
  readonly count: number;
}

export interface Stats {
  readonly count: number;
  readonly average: number;
  readonly total: number;
}

/** One entry of a map; `keys` is empty for a map without keys (`@x = count()`). */
export interface MapEntry<V> {
  readonly keys: readonly string[];
  readonly value: V;
}

export type BpftraceRecord =
  | { readonly type: 'printf'; readonly text: string }
  | { readonly type: 'time'; readonly text: string }
  | { readonly type: 'map'; readonly name: string; readonly entries: readonly MapEntry<number>[] }
  | { readonly type: 'hist'; readonly name: string; readonly entries: readonly MapEntry<readonly HistBucket[]>[] }
  | { readonly type: 'stats'; readonly name: string; readonly entries: readonly MapEntry<Stats>[] }
  | { readonly type: 'attached_probes'; readonly probes: number }
  | { readonly type: 'lost_events'; readonly events: number }
  | { readonly type: 'other'; readonly kind: string; readonly data: unknown };

export class BpftraceParseError extends Error {
  readonly code = 'ERR_SIDECAR_OUTPUT';

  constructor(
    message: string,
    readonly line: string,
  ) {
    super(`${message}: ${line.length > 200 ? `${line.slice(0, 200)}…` : line}`);
  }
}

/**
 * The records of one output line: none for a blank line, one per map for a
 * map record (bpftrace prints one map per record, but a record with several
 * is read the same way). Throws BpftraceParseError for anything that is not
 * a bpftrace JSON record.
 */
export function parseBpftraceLine(line: string): BpftraceRecord[] {
  const text = line.trim();
  if (text === '') return [];
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new BpftraceParseError('not JSON', line);
  }
  if (!isObject(json) || typeof json.type !== 'string') throw new BpftraceParseError('not a bpftrace record (no "type")', line);
  const data = json.data;
  switch (json.type) {
    case 'printf':
    case 'time':
      if (typeof data !== 'string') throw new BpftraceParseError(`${json.type} record without text`, line);
      return [{ type: json.type, text: data }];
    case 'attached_probes':
      return [{ type: 'attached_probes', probes: isObject(data) && typeof data.probes === 'number' ? data.probes : 0 }];
    case 'lost_events':
      return [{ type: 'lost_events', events: isObject(data) && typeof data.events === 'number' ? data.events : 0 }];
    case 'map':
      return maps(data, line).map(([name, value]) => ({ type: 'map', name, entries: entries(value, isNumber, line) }));
    case 'hist':
      return maps(data, line).map(([name, value]) => ({ type: 'hist', name, entries: entries(value, isBuckets, line) }));
    case 'stats':
      return maps(data, line).map(([name, value]) => ({ type: 'stats', name, entries: entries(value, isStatsValue, line).map(toStats) }));
    default:
      return [{ type: 'other', kind: json.type, data }];
  }
}

function maps(data: unknown, line: string): [string, unknown][] {
  if (!isObject(data)) throw new BpftraceParseError('map record without maps', line);
  const out = Object.entries(data);
  for (const [name] of out) if (!name.startsWith('@')) throw new BpftraceParseError(`map name ${JSON.stringify(name)} does not start with @`, line);
  return out;
}

/** A map's value: itself when the map has no keys, else an object of keyed values. */
function entries<V>(value: unknown, isValue: (v: unknown) => v is V, line: string): MapEntry<V>[] {
  if (isValue(value)) return [{ keys: [], value }];
  if (!isObject(value)) throw new BpftraceParseError('unexpected map value', line);
  return Object.entries(value).map(([key, v]) => {
    if (!isValue(v)) throw new BpftraceParseError(`unexpected value for key ${JSON.stringify(key)}`, line);
    return { keys: key.split(','), value: v };
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

function isBuckets(v: unknown): v is HistBucket[] {
  return (
    Array.isArray(v) &&
    v.every((b) => isObject(b) && isNumber(b.count) && (b.min === undefined || isNumber(b.min)) && (b.max === undefined || isNumber(b.max)))
  );
}

/** stats() gives {count, average, total}; avg() only the average. */
function isStatsValue(v: unknown): v is Stats | number {
  return isNumber(v) || (isObject(v) && isNumber(v.count) && isNumber(v.average) && isNumber(v.total));
}

function toStats(e: MapEntry<Stats | number>): MapEntry<Stats> {
  const v = e.value;
  return { keys: e.keys, value: typeof v === 'number' ? { count: 0, average: v, total: 0 } : v };
}
