/**
 * Parsing of lorebooks in the two formats in use into one `Lorebook`:
 *  - the Character Card V2/V3 `character_book` (entries in an array, snake_case:
 *    https://github.com/malfoyslastname/character-card-spec-v2/blob/main/spec_v2.md,
 *    V3 adds `use_regex`), including the fields SillyTavern writes into each
 *    entry's `extensions` when it exports a book (`selectiveLogic`,
 *    `match_whole_words`, `scan_depth`, ...);
 *  - the SillyTavern World Info file (`entries` keyed by uid, camelCase:
 *    `key`, `keysecondary`, `order`, `disable`, ...).
 * Nothing throws: every problem becomes an issue with the JSON path of the
 * value, the value is ignored or defaulted, and the rest is still read.
 */
import { checkRegex } from '../characters/safe-regex.js';
import {
  MAX_EXTRA_DEPTH,
  MAX_EXTRA_NODES,
  MAX_KEY_LENGTH,
  MAX_KEYS_PER_ENTRY,
  MAX_LOREBOOK_ENTRIES,
  MAX_LOREBOOK_JSON_CHARS,
  MAX_REGEX_KEYS,
  MAX_SCAN_DEPTH,
} from './limits.js';
import type { LoreKey, Lorebook, LorebookEntry, LorebookFormat, LorebookIssue, LorePosition, ParseResult, SelectiveLogic } from './types.js';

type Obj = Record<string, unknown>;

const SELECTIVE_LOGIC: readonly SelectiveLogic[] = ['and_any', 'not_all', 'not_any', 'and_all'];
/** SillyTavern's `world_info_position` numbers. */
const WI_POSITIONS: readonly LorePosition[] = ['before_char', 'after_char', 'an_top', 'an_bottom', 'at_depth', 'em_top', 'em_bottom', 'outlet'];
const DEFAULT_ORDER = 100;

const CARD_BOOK_FIELDS = new Set(['name', 'description', 'scan_depth', 'token_budget', 'recursive_scanning', 'extensions', 'entries']);
const CARD_ENTRY_FIELDS = new Set([
  'keys', 'content', 'extensions', 'enabled', 'insertion_order', 'case_sensitive', 'name', 'priority', 'id', 'comment',
  'selective', 'secondary_keys', 'constant', 'position', 'use_regex',
]);
const WI_BOOK_FIELDS = new Set(['entries']);
const WI_ENTRY_FIELDS = new Set([
  'uid', 'key', 'keysecondary', 'comment', 'content', 'constant', 'selective', 'selectiveLogic', 'order', 'position', 'disable',
  'probability', 'useProbability', 'depth', 'scanDepth', 'caseSensitive', 'matchWholeWords', 'excludeRecursion', 'preventRecursion',
]);

const IDENT = /^[A-Za-z_$][\w$]*$/;
/** `$.a`, `$["0"]`, `$.entries[3]`. */
export function jsonPath(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  return IDENT.test(key) ? `${base}.${key}` : `${base}[${JSON.stringify(key)}]`;
}

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function own(o: Obj, k: string): unknown {
  return Object.prototype.hasOwnProperty.call(o, k) ? o[k] : undefined;
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing (the field is missing)';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)?.slice(0, 40) ?? String(v)}`;
}

/** Shared state of one parse. */
class Ctx {
  readonly issues: LorebookIssue[] = [];
  regexKeys = 0;
  extraNodes = 0;
  error(path: string, message: string): void {
    this.issues.push({ path, message, severity: 'error' });
  }
  warn(path: string, message: string): void {
    this.issues.push({ path, message, severity: 'warning' });
  }

  /** undefined/null → undefined; a boolean; otherwise a warning and undefined. */
  bool(o: Obj, k: string, path: string): boolean | undefined {
    const v = own(o, k);
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'boolean') return v;
    this.warn(jsonPath(path, k), `must be a boolean, got ${describe(v)}; ignored`);
    return undefined;
  }

  str(o: Obj, k: string, path: string): string | undefined {
    const v = own(o, k);
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'string') return v;
    this.warn(jsonPath(path, k), `must be a string, got ${describe(v)}; ignored`);
    return undefined;
  }

  num(o: Obj, k: string, path: string, opts: { min?: number; max?: number; integer?: boolean } = {}): number | undefined {
    const v = own(o, k);
    if (v === undefined || v === null) return undefined;
    const p = jsonPath(path, k);
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      this.warn(p, `must be a number, got ${describe(v)}; ignored`);
      return undefined;
    }
    if (opts.integer && !Number.isInteger(v)) {
      this.warn(p, `must be an integer, got ${v}; ignored`);
      return undefined;
    }
    if ((opts.min !== undefined && v < opts.min) || (opts.max !== undefined && v > opts.max)) {
      this.warn(p, `must be between ${opts.min ?? '-∞'} and ${opts.max ?? '∞'}, got ${v}; ignored`);
      return undefined;
    }
    return v;
  }

  /**
   * A JSON-like deep copy (so that freezing the book never freezes the
   * caller's objects), bounded in depth and size; cycles and values JSON
   * cannot hold are dropped with a warning.
   */
  copy(v: unknown, path: string, depth = 0, ancestors: unknown[] = []): unknown {
    if (++this.extraNodes > MAX_EXTRA_NODES) {
      if (this.extraNodes === MAX_EXTRA_NODES + 1) this.warn(path, `unknown fields hold more than ${MAX_EXTRA_NODES} values; the rest is dropped`);
      return undefined;
    }
    if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
    if (typeof v === 'number') return Number.isFinite(v) ? v : null;
    if (typeof v !== 'object') {
      this.warn(path, `${typeof v} is not JSON data; dropped`);
      return undefined;
    }
    if (depth >= MAX_EXTRA_DEPTH) {
      this.warn(path, `nested deeper than ${MAX_EXTRA_DEPTH} levels; dropped`);
      return undefined;
    }
    if (ancestors.includes(v)) {
      this.warn(path, 'refers to itself (a cycle); dropped');
      return undefined;
    }
    ancestors.push(v);
    try {
      if (Array.isArray(v)) {
        const out: unknown[] = [];
        for (let i = 0; i < v.length; i++) {
          const c = this.copy(v[i], jsonPath(path, i), depth + 1, ancestors);
          out.push(c === undefined ? null : c);
        }
        return out;
      }
      return this.copyFields(v as Obj, path, () => true, depth + 1, ancestors);
    } finally {
      ancestors.pop();
    }
  }

  /** Copies the own enumerable fields of `o` that `keep` selects; `__proto__` stays an ordinary key. */
  copyFields(o: Obj, path: string, keep: (k: string) => boolean, depth = 0, ancestors: unknown[] = []): Obj {
    const out: Obj = {};
    for (const k of Object.keys(o)) {
      if (!keep(k)) continue;
      const c = this.copy(o[k], jsonPath(path, k), depth, ancestors);
      if (c !== undefined) Object.defineProperty(out, k, { value: c, enumerable: true, writable: true, configurable: true });
    }
    return out;
  }

  /** An `extensions` object: must be an object (a missing one is `{}`, per the card spec). */
  extensions(o: Obj, path: string): Obj {
    const v = own(o, 'extensions');
    if (v === undefined || v === null) return {};
    const p = jsonPath(path, 'extensions');
    if (!isObject(v)) {
      this.warn(p, `must be an object, got ${describe(v)}; ignored`);
      return {};
    }
    return this.copy(v, p) as Obj;
  }

  /**
   * A key list. A string instead of a list is split on commas (some editors
   * write keys that way). Keys that cannot match are left out with an issue.
   */
  keys(o: Obj, k: string, path: string, useRegex: boolean, caseSensitive: boolean): LoreKey[] {
    const v = own(o, k);
    const p = jsonPath(path, k);
    if (v === undefined || v === null) return [];
    let list: unknown[];
    if (typeof v === 'string') {
      this.warn(p, 'must be a list of strings; a string was split on commas');
      list = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
    } else if (Array.isArray(v)) {
      list = v;
    } else {
      this.error(p, `must be a list of strings, got ${describe(v)}; ignored`);
      return [];
    }
    if (list.length > MAX_KEYS_PER_ENTRY) {
      this.warn(p, `has ${list.length} keys; only the first ${MAX_KEYS_PER_ENTRY} are used`);
      list = list.slice(0, MAX_KEYS_PER_ENTRY);
    }
    const out: LoreKey[] = [];
    list.forEach((key, i) => {
      const kp = jsonPath(p, i);
      if (typeof key !== 'string') {
        this.error(kp, `a key must be a string, got ${describe(key)}; ignored`);
        return;
      }
      if (key.trim() === '') {
        this.warn(kp, 'an empty key would match every message; ignored');
        return;
      }
      const regex = parseRegexKey(key) ?? (useRegex ? { pattern: key, flags: caseSensitive ? '' : 'i' } : undefined);
      if (!regex) {
        if (key.length > MAX_KEY_LENGTH) {
          this.error(kp, `a key is at most ${MAX_KEY_LENGTH} characters, this one has ${key.length}; ignored`);
          return;
        }
        out.push({ kind: 'plain', source: key });
        return;
      }
      const flags = regex.flags.replace(/[gyd]/g, '');
      const problem = checkRegex(regex.pattern, flags);
      if (problem !== undefined) {
        this.error(kp, `regex key refused: ${problem}`);
        return;
      }
      if (++this.regexKeys > MAX_REGEX_KEYS) {
        this.error(kp, `a book may have at most ${MAX_REGEX_KEYS} regex keys; ignored`);
        return;
      }
      out.push({ kind: 'regex', source: key, pattern: regex.pattern, flags });
    });
    return out;
  }
}

/**
 * A key written `/pattern/flags` (SillyTavern's rule: it starts with `/` and
 * what follows the last `/` is only regex flags). `/r/writing` is plain text.
 */
export function parseRegexKey(key: string): { pattern: string; flags: string } | undefined {
  if (key.length < 3 || key[0] !== '/') return undefined;
  const last = key.lastIndexOf('/');
  if (last < 2) return undefined;
  const flags = key.slice(last + 1);
  if (!/^[dgimsuvy]*$/.test(flags)) return undefined;
  return { pattern: key.slice(1, last), flags };
}

interface EntryFields {
  id: number | string;
  name: string | undefined;
  comment: string;
  keys: LoreKey[];
  secondaryKeys: LoreKey[];
  content: string;
  enabled: boolean;
  constant: boolean;
  selective: boolean;
  selectiveLogic: SelectiveLogic;
  order: number;
  priority: number | undefined;
  caseSensitive: boolean;
  matchWholeWords: boolean | undefined;
  scanDepth: number | undefined;
  position: LorePosition;
  depth: number | undefined;
  probability: number | undefined;
  useProbability: boolean;
  excludeRecursion: boolean;
  preventRecursion: boolean;
  extensions: Obj;
  extra: Obj;
}

function selectiveLogic(ctx: Ctx, o: Obj, k: string, path: string): SelectiveLogic | undefined {
  const n = ctx.num(o, k, path, { min: 0, max: 3, integer: true });
  return n === undefined ? undefined : SELECTIVE_LOGIC[n];
}

function wiPosition(ctx: Ctx, o: Obj, k: string, path: string): LorePosition | undefined {
  const n = ctx.num(o, k, path, { min: 0, max: WI_POSITIONS.length - 1, integer: true });
  return n === undefined ? undefined : WI_POSITIONS[n];
}

function parseCardEntry(ctx: Ctx, e: Obj, path: string, index: number): EntryFields | undefined {
  const content = own(e, 'content');
  if (typeof content !== 'string') {
    ctx.error(jsonPath(path, 'content'), `must be a string, got ${describe(content)}; the entry is dropped`);
    return undefined;
  }
  const extensions = ctx.extensions(e, path);
  const xp = jsonPath(path, 'extensions');
  const caseSensitive = ctx.bool(e, 'case_sensitive', path) ?? ctx.bool(extensions, 'case_sensitive', xp) ?? false;
  const useRegex = ctx.bool(e, 'use_regex', path) ?? false;
  if (!Object.prototype.hasOwnProperty.call(e, 'keys')) ctx.warn(jsonPath(path, 'keys'), 'is missing; the entry has no primary keys');
  const keys = ctx.keys(e, 'keys', path, useRegex, caseSensitive);
  const secondaryKeys = ctx.keys(e, 'secondary_keys', path, useRegex, caseSensitive);

  // Required by the spec: a missing value is reported; an invalid one was reported by the reader.
  const has = (k: string) => own(e, k) !== undefined && own(e, k) !== null;
  if (!has('enabled')) ctx.warn(jsonPath(path, 'enabled'), 'is missing; the entry is enabled');
  const enabled = ctx.bool(e, 'enabled', path) ?? true;
  if (!has('insertion_order')) ctx.warn(jsonPath(path, 'insertion_order'), `is missing; ${DEFAULT_ORDER} is used`);
  const order = ctx.num(e, 'insertion_order', path) ?? DEFAULT_ORDER;
  let id: number | string = index;
  const rawId = own(e, 'id');
  if (typeof rawId === 'number' && Number.isFinite(rawId)) id = rawId;
  else if (typeof rawId === 'string' && rawId !== '') id = rawId;
  else if (rawId !== undefined && rawId !== null) ctx.warn(jsonPath(path, 'id'), `must be a number or a string, got ${describe(rawId)}; the index ${index} is used`);

  // SillyTavern's own position (0..7) in extensions wins over the spec's two values, and anything
  // but "before_char" is after the character, as in its card importer (convertCharacterBook).
  const cardPosition = own(e, 'position');
  const position = wiPosition(ctx, extensions, 'position', xp) ?? (cardPosition === 'before_char' ? 'before_char' : 'after_char');
  if (cardPosition !== undefined && cardPosition !== null && cardPosition !== 'before_char' && cardPosition !== 'after_char' && cardPosition !== '') {
    ctx.warn(jsonPath(path, 'position'), `must be "before_char" or "after_char", got ${describe(cardPosition)}; ignored`);
  }

  return {
    id,
    name: ctx.str(e, 'name', path),
    comment: ctx.str(e, 'comment', path) ?? '',
    keys,
    secondaryKeys,
    content,
    enabled,
    constant: ctx.bool(e, 'constant', path) ?? false,
    selective: ctx.bool(e, 'selective', path) ?? false,
    selectiveLogic: selectiveLogic(ctx, extensions, 'selectiveLogic', xp) ?? 'and_any',
    order,
    priority: ctx.num(e, 'priority', path),
    caseSensitive,
    matchWholeWords: ctx.bool(extensions, 'match_whole_words', xp),
    scanDepth: ctx.num(extensions, 'scan_depth', xp, { min: 0, integer: true }),
    position,
    depth: ctx.num(extensions, 'depth', xp, { min: 0, integer: true }),
    probability: ctx.num(extensions, 'probability', xp, { min: 0, max: 100 }),
    useProbability: ctx.bool(extensions, 'useProbability', xp) ?? true,
    excludeRecursion: ctx.bool(extensions, 'exclude_recursion', xp) ?? false,
    preventRecursion: ctx.bool(extensions, 'prevent_recursion', xp) ?? false,
    extensions,
    extra: ctx.copyFields(e, path, (k) => !CARD_ENTRY_FIELDS.has(k)),
  };
}

function parseWorldInfoEntry(ctx: Ctx, e: Obj, path: string, mapKey: string): EntryFields | undefined {
  const content = own(e, 'content');
  if (typeof content !== 'string') {
    ctx.error(jsonPath(path, 'content'), `must be a string, got ${describe(content)}; the entry is dropped`);
    return undefined;
  }
  const caseSensitive = ctx.bool(e, 'caseSensitive', path) ?? false;
  let id: number | string = /^(0|[1-9]\d{0,14})$/.test(mapKey) ? Number(mapKey) : mapKey;
  const uid = own(e, 'uid');
  if (typeof uid === 'number' && Number.isFinite(uid)) id = uid;
  else if (typeof uid === 'string' && uid !== '') id = uid;
  else if (uid !== undefined && uid !== null) ctx.warn(jsonPath(path, 'uid'), `must be a number, got ${describe(uid)}; the entry's key ${JSON.stringify(mapKey)} is used`);

  return {
    id,
    name: undefined,
    comment: ctx.str(e, 'comment', path) ?? '',
    keys: ctx.keys(e, 'key', path, false, caseSensitive),
    secondaryKeys: ctx.keys(e, 'keysecondary', path, false, caseSensitive),
    content,
    enabled: !(ctx.bool(e, 'disable', path) ?? false),
    constant: ctx.bool(e, 'constant', path) ?? false,
    selective: ctx.bool(e, 'selective', path) ?? false,
    selectiveLogic: selectiveLogic(ctx, e, 'selectiveLogic', path) ?? 'and_any',
    order: ctx.num(e, 'order', path) ?? DEFAULT_ORDER,
    priority: undefined,
    caseSensitive,
    matchWholeWords: ctx.bool(e, 'matchWholeWords', path),
    scanDepth: ctx.num(e, 'scanDepth', path, { min: 0, integer: true }),
    position: wiPosition(ctx, e, 'position', path) ?? 'before_char',
    depth: ctx.num(e, 'depth', path, { min: 0, integer: true }),
    probability: ctx.num(e, 'probability', path, { min: 0, max: 100 }),
    useProbability: ctx.bool(e, 'useProbability', path) ?? true,
    excludeRecursion: ctx.bool(e, 'excludeRecursion', path) ?? false,
    preventRecursion: ctx.bool(e, 'preventRecursion', path) ?? false,
    extensions: {},
    extra: ctx.copyFields(e, path, (k) => !WI_ENTRY_FIELDS.has(k)),
  };
}

function finishEntries(ctx: Ctx, drafts: { fields: EntryFields; path: string }[]): LorebookEntry[] {
  const seen = new Set<string>();
  return drafts.map(({ fields, path }, index) => {
    const idKey = `${typeof fields.id}:${fields.id}`;
    if (seen.has(idKey)) ctx.warn(path, `id ${JSON.stringify(fields.id)} is used by an earlier entry too`);
    seen.add(idKey);
    if (fields.enabled && !fields.constant && fields.keys.length === 0) {
      ctx.warn(path, 'has no usable primary key and is not constant: it never activates');
    }
    return { index, ...fields };
  });
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze((v as Obj)[k]);
  }
  return v;
}

function build(ctx: Ctx, format: LorebookFormat, fields: Omit<Lorebook, 'format'>): ParseResult {
  return { lorebook: deepFreeze({ format, ...fields }), issues: ctx.issues };
}

/** A Character Card V2/V3 `character_book` (`path` locates it in the input, for issues). */
export function parseCharacterBook(input: unknown, path = '$'): ParseResult {
  const ctx = new Ctx();
  return guard(ctx, path, () => readCharacterBook(ctx, input, path));
}

function readCharacterBook(ctx: Ctx, input: unknown, path: string): ParseResult {
  if (!isObject(input)) {
    ctx.error(path, `a character_book must be an object, got ${describe(input)}`);
    return { lorebook: undefined, issues: ctx.issues };
  }
  const ep = jsonPath(path, 'entries');
  let list = own(input, 'entries');
  if (!Array.isArray(list)) {
    ctx.error(ep, `must be a list of entries, got ${describe(list)}; the book is empty`);
    list = [];
  }
  let entries = list as unknown[];
  if (entries.length > MAX_LOREBOOK_ENTRIES) {
    ctx.error(ep, `has ${entries.length} entries; only the first ${MAX_LOREBOOK_ENTRIES} are read`);
    entries = entries.slice(0, MAX_LOREBOOK_ENTRIES);
  }
  const drafts: { fields: EntryFields; path: string }[] = [];
  entries.forEach((e, i) => {
    const p = jsonPath(ep, i);
    if (!isObject(e)) {
      ctx.error(p, `an entry must be an object, got ${describe(e)}; dropped`);
      return;
    }
    const fields = parseCardEntry(ctx, e, p, i);
    if (fields) drafts.push({ fields, path: p });
  });
  const parsedEntries = finishEntries(ctx, drafts);
  let tokenBudget = ctx.num(input, 'token_budget', path, { min: 0, integer: true });
  if (tokenBudget === 0) {
    ctx.warn(jsonPath(path, 'token_budget'), 'is 0, taken as not set');
    tokenBudget = undefined;
  }
  return build(ctx, 'character_book', {
    name: ctx.str(input, 'name', path),
    description: ctx.str(input, 'description', path),
    scanDepth: ctx.num(input, 'scan_depth', path, { min: 0, max: MAX_SCAN_DEPTH, integer: true }),
    tokenBudget,
    recursiveScanning: ctx.bool(input, 'recursive_scanning', path),
    entries: parsedEntries,
    extensions: ctx.extensions(input, path),
    extra: ctx.copyFields(input, path, (k) => !CARD_BOOK_FIELDS.has(k)),
  });
}

/** A SillyTavern World Info file (`{"entries": {"0": {...}, ...}}`). */
export function parseWorldInfo(input: unknown, path = '$'): ParseResult {
  const ctx = new Ctx();
  return guard(ctx, path, () => readWorldInfo(ctx, input, path));
}

function readWorldInfo(ctx: Ctx, input: unknown, path: string): ParseResult {
  if (!isObject(input)) {
    ctx.error(path, `a World Info file must be an object, got ${describe(input)}`);
    return { lorebook: undefined, issues: ctx.issues };
  }
  const ep = jsonPath(path, 'entries');
  let map = own(input, 'entries');
  if (!isObject(map)) {
    ctx.error(ep, `must be an object of entries keyed by uid, got ${describe(map)}; the book is empty`);
    map = {};
  }
  const m = map as Obj;
  let keys = Object.keys(m);
  if (keys.length > MAX_LOREBOOK_ENTRIES) {
    ctx.error(ep, `has ${keys.length} entries; only the first ${MAX_LOREBOOK_ENTRIES} are read`);
    keys = keys.slice(0, MAX_LOREBOOK_ENTRIES);
  }
  const drafts: { fields: EntryFields; path: string }[] = [];
  for (const k of keys) {
    const p = jsonPath(ep, k);
    const e = m[k];
    if (!isObject(e)) {
      ctx.error(p, `an entry must be an object, got ${describe(e)}; dropped`);
      continue;
    }
    const fields = parseWorldInfoEntry(ctx, e, p, k);
    if (fields) drafts.push({ fields, path: p });
  }
  return build(ctx, 'world_info', {
    name: undefined,
    description: undefined,
    scanDepth: undefined,
    tokenBudget: undefined,
    recursiveScanning: undefined,
    entries: finishEntries(ctx, drafts),
    extensions: {},
    extra: ctx.copyFields(input, path, (k) => !WI_BOOK_FIELDS.has(k)),
  });
}

/**
 * Any lorebook: a World Info file (`entries` is an object), a
 * `character_book` (`entries` is a list), or a whole V2/V3 card
 * (`{spec, data: {character_book}}`, read at `$.data.character_book`).
 */
export function parseLorebook(input: unknown): ParseResult {
  const ctx = new Ctx();
  return guard(ctx, '$', () => {
    if (!isObject(input)) {
      ctx.error('$', `a lorebook must be a JSON object, got ${describe(input)}`);
      return { lorebook: undefined, issues: ctx.issues };
    }
    const data = own(input, 'data');
    const spec = own(input, 'spec');
    if ((typeof spec === 'string' && spec.startsWith('chara_card_')) || (isObject(data) && own(data, 'character_book') !== undefined)) {
      const book = isObject(data) ? own(data, 'character_book') : undefined;
      if (book === undefined || book === null) {
        ctx.error('$.data.character_book', 'the card has no character_book');
        return { lorebook: undefined, issues: ctx.issues };
      }
      return readCharacterBook(ctx, book, '$.data.character_book');
    }
    const entries = own(input, 'entries');
    if (Array.isArray(entries)) return readCharacterBook(ctx, input, '$');
    if (isObject(entries)) return readWorldInfo(ctx, input, '$');
    ctx.error('$.entries', `must be a list (character_book) or an object keyed by uid (World Info), got ${describe(entries)}`);
    return { lorebook: undefined, issues: ctx.issues };
  });
}

/** `parseLorebook` of JSON text; a text that is not JSON is an issue at `$`. */
export function parseLorebookJson(text: string): ParseResult {
  if (text.length > MAX_LOREBOOK_JSON_CHARS) {
    return { lorebook: undefined, issues: [{ path: '$', message: `the text has ${text.length} characters; the limit is ${MAX_LOREBOOK_JSON_CHARS}`, severity: 'error' }] };
  }
  let value: unknown;
  try {
    value = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (err) {
    return { lorebook: undefined, issues: [{ path: '$', message: `not JSON: ${(err as Error).message}`, severity: 'error' }] };
  }
  return parseLorebook(value);
}

/** The parsers never throw: an unexpected failure (e.g. a getter that throws) becomes an issue. */
function guard(ctx: Ctx, path: string, fn: () => ParseResult): ParseResult {
  try {
    return fn();
  } catch (err) {
    ctx.error(path, `could not be read: ${(err as Error)?.message ?? String(err)}`);
    return { lorebook: undefined, issues: ctx.issues };
  }
}
