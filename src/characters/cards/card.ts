/**
 * Character Cards in: JSON text, or a PNG with the card in a `ccv3` (V3) or
 * `chara` (V2, V1) text chunk as base64 of UTF-8 JSON. V1, V2 and V3 cards are
 * normalised to one CardData (the V3 superset); unknown keys and every
 * `extensions` object are kept verbatim so that export gives them back.
 *
 * Never throws on bad input: every problem is a CardIssue with a JSON path
 * (`data.character_book.entries[3].keys: expected an array of strings`), all
 * problems of a card are reported together, and input is bounded before it is
 * parsed (see CARD_LIMITS). Pure: no I/O here. See docs/cards.md.
 *
 * Specs: V2 https://github.com/malfoyslastname/character-card-spec-v2/blob/main/spec_v2.md
 *        V3 https://github.com/kwaroran/character-card-spec-v3/blob/main/SPEC_V3.md
 */
import { decodeTextChunk, MAX_PNG_BYTES, MAX_PNG_CHUNK_BYTES, PNG_SIGNATURE, readPngChunks, textChunkKeyword } from './png.js';
import type {
  Card,
  CardAsset,
  CardContainer,
  CardData,
  CardIssue,
  CardParseResult,
  CardSpec,
  CharacterBook,
  CharacterBookEntry,
  JsonObject,
} from './types.js';

export const CARD_LIMITS = Object.freeze({
  /** A PNG file. */
  pngBytes: MAX_PNG_BYTES,
  /** One PNG chunk. */
  chunkBytes: MAX_PNG_CHUNK_BYTES,
  /** The card's JSON, as UTF-8 bytes (after base64 decoding for PNG). */
  jsonBytes: 4 * 1024 * 1024,
  /** Nesting of arrays and objects in the JSON. */
  depth: 64,
  /** `name` and `nickname`, in UTF-16 code units. */
  nameChars: 256,
  /** Items of each known list (entries, keys, greetings, tags, assets, source). */
  listItems: 10_000,
});

export const V2_SPEC = 'chara_card_v2';
export const V3_SPEC = 'chara_card_v3';
export const SPEC_VERSIONS: Readonly<Record<CardSpec, string>> = { chara_card_v1: '1.0', chara_card_v2: '2.0', chara_card_v3: '3.0' };

/** The six fields of a V1 card, which V2 and V3 nest inside `data`. */
export const V1_FIELDS = ['name', 'description', 'personality', 'scenario', 'first_mes', 'mes_example'] as const;
const V2_STRINGS = [...V1_FIELDS.slice(1), 'creator_notes', 'system_prompt', 'post_history_instructions', 'creator', 'character_version'] as const;
const STRING_LISTS = ['alternate_greetings', 'tags', 'group_only_greetings'] as const;
const ENTRY_POSITIONS: ReadonlySet<string> = new Set(['before_char', 'after_char']);

type Path = readonly (string | number)[];
type Report = (severity: CardIssue['severity'], path: Path, message: string, at?: { line: number; column: number }) => void;

const IDENT_RE = /^[A-Za-z_$][\w$]*$/;

/** `['data', 'character_book', 'entries', 3, 'keys']` → `data.character_book.entries[3].keys`. */
export function formatPath(path: Path): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else if (IDENT_RE.test(part)) out += out === '' ? part : `.${part}`;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out;
}

/** `[ccv3] data.name: must not be empty` — one line per issue, for logs. */
export function formatCardIssue(i: CardIssue): string {
  const where = [i.chunk ? `[${i.chunk}]` : '', i.path || '(card)', i.line === undefined ? '' : `${i.line}:${i.column}`].filter(Boolean).join(' ');
  return `${i.severity === 'warning' ? 'warning: ' : ''}${where}: ${i.message}`;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** Own keys without the prototype trap: JSON.parse makes `__proto__` an own key, and so do these. */
const omit = (obj: Record<string, unknown>, keys: ReadonlySet<string>): JsonObject =>
  Object.fromEntries(Object.entries(obj).filter(([k]) => !keys.has(k))) as JsonObject;

function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, column: offset - start + 1 };
}

// ---------------------------------------------------------------------------
// JSON text

const WS_RE = /[ \t\n\r]*/y;
const STRING_RUN_RE = /[^"\\\u0000-\u001f]*/y;
const NUMBER_RE = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ESCAPE_RE = /\\(?:["\\/bfnrt]|u[0-9A-Fa-f]{4})/y;

/**
 * Checks JSON syntax and nesting depth in one linear pass, so that a broken
 * or hostile document is refused with a position before JSON.parse allocates
 * anything, and the message does not quote the input (V8's does).
 */
export function checkJsonSyntax(text: string, maxDepth: number): { offset: number; message: string } | undefined {
  const stack: string[] = [];
  let i = 0;
  const ws = () => {
    WS_RE.lastIndex = i;
    WS_RE.test(text);
    i = WS_RE.lastIndex;
  };
  const fail = (message: string, at = i) => ({ offset: at, message });
  const string = (): { offset: number; message: string } | undefined => {
    const start = i;
    i++;
    for (;;) {
      STRING_RUN_RE.lastIndex = i;
      STRING_RUN_RE.test(text);
      i = STRING_RUN_RE.lastIndex;
      const c = text.charCodeAt(i);
      if (Number.isNaN(c)) return fail('unterminated string', start);
      if (c === 0x22) {
        i++;
        return undefined;
      }
      if (c === 0x5c) {
        ESCAPE_RE.lastIndex = i;
        if (!ESCAPE_RE.test(text)) return fail('invalid escape sequence in string');
        i = ESCAPE_RE.lastIndex;
      } else return fail('control character in string (escape it, e.g. \\n)');
    }
  };
  // Each turn of the loop reads one value, then the punctuation after it.
  for (;;) {
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      if (stack.length >= maxDepth) return fail(`nesting deeper than ${maxDepth} levels`);
      stack.push(c);
      i++;
      ws();
      if (text[i] === (c === '{' ? '}' : ']')) {
        stack.pop();
        i++;
      } else if (c === '{') {
        if (text[i] !== '"') return fail('expected a "key" or "}"');
        const e = string();
        if (e) return e;
        ws();
        if (text[i] !== ':') return fail('expected ":" after the key');
        i++;
        continue;
      } else continue;
    } else if (c === '"') {
      const e = string();
      if (e) return e;
    } else if (c !== undefined && (c === '-' || (c >= '0' && c <= '9'))) {
      NUMBER_RE.lastIndex = i;
      if (!NUMBER_RE.test(text)) return fail('invalid number');
      i = NUMBER_RE.lastIndex;
    } else if (text.startsWith('true', i)) i += 4;
    else if (text.startsWith('false', i)) i += 5;
    else if (text.startsWith('null', i)) i += 4;
    else return fail(c === undefined ? 'unexpected end of input: expected a value' : 'expected a value');

    // After a value: close containers, or a comma before the next item.
    for (;;) {
      ws();
      const top = stack[stack.length - 1];
      if (top === undefined) return i < text.length ? fail('unexpected text after the JSON value') : undefined;
      const close = top === '{' ? '}' : ']';
      if (text[i] === close) {
        stack.pop();
        i++;
        continue;
      }
      if (text[i] !== ',') return fail(i >= text.length ? `unexpected end of input: expected "," or "${close}"` : `expected "," or "${close}"`);
      i++;
      if (top === '{') {
        ws();
        if (text[i] !== '"') return fail('expected a "key"');
        const e = string();
        if (e) return e;
        ws();
        if (text[i] !== ':') return fail('expected ":" after the key');
        i++;
      }
      break;
    }
  }
}

const LONE_SURROGATE_RE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Reports strings (and keys) holding unpaired surrogates: they cannot be written back as UTF-8. Returns how many. */
function checkStrings(value: unknown, path: (string | number)[], report: Report): number {
  const message = 'contains an unpaired UTF-16 surrogate escape (\\uD800-\\uDFFF); it cannot be encoded as UTF-8';
  if (typeof value === 'string') {
    if (!LONE_SURROGATE_RE.test(value)) return 0;
    report('error', path, message);
    return 1;
  }
  let n = 0;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      path.push(i);
      n += checkStrings(value[i], path, report);
      path.pop();
    }
  } else if (isObject(value)) {
    for (const [k, v] of Object.entries(value)) {
      path.push(k);
      if (LONE_SURROGATE_RE.test(k)) {
        report('error', path, `key ${message}`);
        n++;
      }
      n += checkStrings(v, path, report);
      path.pop();
    }
  }
  return n;
}

const FAILED = Symbol('failed');

function parseJsonText(text: string, report: Report): unknown {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // a UTF-8 BOM, as Windows editors write it
  // UTF-16 length never exceeds the UTF-8 byte length: the cheap test first.
  if (text.length > CARD_LIMITS.jsonBytes || Buffer.byteLength(text, 'utf8') > CARD_LIMITS.jsonBytes) {
    report('error', [], `card JSON is larger than the limit of ${CARD_LIMITS.jsonBytes} bytes`);
    return FAILED;
  }
  if (text.trim() === '') {
    report('error', [], 'empty input: expected a JSON object');
    return FAILED;
  }
  const bad = checkJsonSyntax(text, CARD_LIMITS.depth);
  if (bad) {
    report('error', [], `invalid JSON: ${bad.message}`, lineColumn(text, bad.offset));
    return FAILED;
  }
  const value: unknown = JSON.parse(text);
  return checkStrings(value, [], report) > 0 ? FAILED : value;
}

// ---------------------------------------------------------------------------
// Card objects

/** Validates and normalises a parsed JSON value as a card. */
function toCard(doc: unknown, report: Report): Card | undefined {
  if (!isObject(doc)) {
    report('error', [], `a character card must be a JSON object, found ${Array.isArray(doc) ? 'an array' : doc === null ? 'null' : typeof doc}`);
    return undefined;
  }
  const spec = doc.spec;
  let cardSpec: CardSpec;
  if (spec === V2_SPEC || spec === V3_SPEC) cardSpec = spec;
  else if (spec === undefined || spec === null) {
    if (isObject(doc.data) && doc.name === undefined) {
      cardSpec = String(doc.spec_version ?? '').startsWith('3') ? V3_SPEC : V2_SPEC;
      report('warning', ['spec'], `missing; read as ${cardSpec} because the card has a "data" object`);
    } else if (doc.name === undefined && (doc.entries !== undefined || doc.originalData !== undefined)) {
      report('error', [], 'this looks like a lorebook (World Info) file, not a character card');
      return undefined;
    } else cardSpec = 'chara_card_v1';
  } else if (spec === 'lorebook_v3') {
    report('error', ['spec'], '"lorebook_v3" is a lorebook, not a character card');
    return undefined;
  } else {
    report('error', ['spec'], `unsupported spec ${JSON.stringify(spec)}; expected "${V2_SPEC}" or "${V3_SPEC}" (or a V1 card, which has no spec)`);
    return undefined;
  }

  if (cardSpec === 'chara_card_v1') {
    const fields = new Set<string>(V1_FIELDS);
    const raw = Object.fromEntries(Object.entries(doc).filter(([k]) => fields.has(k)));
    const data = toData(raw, [], report);
    // Export writes spec, spec_version and data at the top level; a V1 card's own keys of those names cannot survive.
    for (const key of ['spec', 'spec_version', 'data']) {
      if (Object.hasOwn(doc, key)) {
        fields.add(key);
        if (doc[key] !== null) report('warning', [key], `ignored: a card without "spec" is read as V1, which has no "${key}"`);
      }
    }
    return data && { spec: cardSpec, specVersion: SPEC_VERSIONS.chara_card_v1, data, extra: omit(doc, fields) };
  }

  const expected = SPEC_VERSIONS[cardSpec];
  let specVersion = expected;
  const sv = doc.spec_version;
  if (sv === undefined || sv === null) {
    if (spec !== undefined) report('warning', ['spec_version'], `missing; assumed "${expected}"`);
  } else if (typeof sv !== 'string' && typeof sv !== 'number') {
    report('error', ['spec_version'], 'expected a string');
  } else {
    specVersion = String(sv);
    const n = Number.parseFloat(specVersion);
    if (specVersion !== expected) {
      const newer = n > Number.parseFloat(expected) && Math.floor(n) === Math.floor(Number.parseFloat(expected));
      report('warning', ['spec_version'], newer
        ? `"${specVersion}" is newer than "${expected}": the card is read as ${expected}; fields it adds are kept but not used`
        : `"${specVersion}" is not "${expected}"; the card is read as ${cardSpec} ${expected}`);
    }
  }
  if (!isObject(doc.data)) {
    report('error', ['data'], doc.data === undefined ? `is required for ${cardSpec}: an object with the card's fields` : 'expected an object');
    return undefined;
  }
  const data = toData(doc.data, ['data'], report);
  return data && { spec: cardSpec, specVersion, data, extra: omit(doc, new Set(['spec', 'spec_version', 'data'])) };
}

/** The card's data: known fields typed and defaulted, everything else kept as it is. */
function toData(raw: Record<string, unknown>, base: Path, report: Report): CardData | undefined {
  let ok = true;
  const error = (key: Path, message: string) => {
    ok = false;
    report('error', [...base, ...key], message);
  };
  const known: Record<string, unknown> = {};
  const dropped = new Set<string>();

  const name = raw.name;
  if (name === undefined || name === null) error(['name'], 'is required');
  else if (typeof name !== 'string' && typeof name !== 'number') error(['name'], 'expected a string');
  else {
    const s = String(name);
    if (s.trim() === '') error(['name'], 'must not be empty');
    else if (s.length > CARD_LIMITS.nameChars) error(['name'], `is ${s.length} characters; the limit is ${CARD_LIMITS.nameChars}`);
    else if (/[\u0000-\u001f\u007f]/.test(s)) error(['name'], 'must be one line without control characters');
    known.name = s;
  }
  for (const key of V2_STRINGS) {
    const v = raw[key];
    if (v === undefined || v === null) known[key] = '';
    else if (typeof v === 'string') known[key] = v;
    else if (typeof v === 'number') known[key] = String(v);
    else error([key], 'expected a string');
  }
  for (const key of STRING_LISTS) {
    const v = raw[key];
    if (v === undefined || v === null) known[key] = [];
    else if (stringList(v, [...base, key], report)) known[key] = v;
    else ok = false;
  }
  const ext = raw.extensions;
  if (ext === undefined || ext === null) known.extensions = {};
  else if (!isObject(ext)) error(['extensions'], 'expected an object');

  const book = raw.character_book;
  if (book === undefined || book === null) dropped.add('character_book');
  else if (!checkBook(book, [...base, 'character_book'], report)) ok = false;

  // V3 fields: optional (null counts as absent), typed when present.
  const optional = (key: string, check: (v: unknown, path: Path) => boolean) => {
    const v = raw[key];
    if (v === undefined || v === null) dropped.add(key);
    else if (!check(v, [...base, key])) ok = false;
  };
  const expect = (test: (v: unknown) => boolean, message: string) => (v: unknown, path: Path) => {
    if (test(v)) return true;
    report('error', path, message);
    return false;
  };
  optional('nickname', expect((v) => typeof v === 'string' && v.length <= CARD_LIMITS.nameChars, `expected a string of at most ${CARD_LIMITS.nameChars} characters`));
  optional('creator_notes_multilingual', expect((v) => isObject(v) && Object.values(v).every((s) => typeof s === 'string'), 'expected an object of language code → string'));
  optional('source', (v, path) => stringList(v, path, report));
  optional('creation_date', expect((v) => typeof v === 'number' && Number.isFinite(v), 'expected a number (Unix time in seconds)'));
  optional('modification_date', expect((v) => typeof v === 'number' && Number.isFinite(v), 'expected a number (Unix time in seconds)'));
  optional('assets', (v, path) => checkAssets(v, path, report));

  if (!ok) return undefined;
  // Keys keep the card's order; known fields are replaced by their normalised values.
  const data = omit(raw, dropped);
  Object.assign(data, known);
  return data as CardData;
}

function stringList(v: unknown, path: Path, report: Report): v is string[] {
  if (!Array.isArray(v)) {
    report('error', path, 'expected an array of strings');
    return false;
  }
  const bad = v.findIndex((s) => typeof s !== 'string');
  if (bad >= 0) {
    report('error', path, `expected an array of strings (item ${bad} is ${describe(v[bad])})`);
    return false;
  }
  if (v.length > CARD_LIMITS.listItems) {
    report('error', path, `has ${v.length} items; the limit is ${CARD_LIMITS.listItems}`);
    return false;
  }
  return true;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

function checkAssets(v: unknown, path: Path, report: Report): v is CardAsset[] {
  if (!Array.isArray(v)) {
    report('error', path, 'expected an array of assets');
    return false;
  }
  if (v.length > CARD_LIMITS.listItems) {
    report('error', path, `has ${v.length} items; the limit is ${CARD_LIMITS.listItems}`);
    return false;
  }
  let ok = true;
  v.forEach((a, i) => {
    if (!isObject(a)) {
      report('error', [...path, i], 'expected an asset object {type, uri, name, ext}');
      ok = false;
      return;
    }
    for (const key of ['type', 'uri', 'name', 'ext']) {
      if (typeof a[key] !== 'string') {
        report('error', [...path, i, key], a[key] === undefined ? 'is required (a string)' : 'expected a string');
        ok = false;
      }
    }
  });
  return ok;
}

/**
 * Checks a character_book's known fields where present. The book is not
 * changed (no defaults are filled in): the lorebook module gets it as is.
 */
function checkBook(book: unknown, path: Path, report: Report): book is CharacterBook {
  if (!isObject(book)) {
    report('error', path, 'expected an object (a lorebook with "entries")');
    return false;
  }
  let ok = true;
  const check = (obj: Record<string, unknown>, at: Path, key: string, kind: 'string' | 'number' | 'boolean' | 'object' | 'id') => {
    const v = obj[key];
    if (v === undefined || v === null) return;
    const good =
      kind === 'object' ? isObject(v)
      : kind === 'number' ? typeof v === 'number' && Number.isFinite(v)
      : kind === 'id' ? (typeof v === 'number' && Number.isFinite(v)) || typeof v === 'string'
      : typeof v === kind;
    if (!good) {
      ok = false;
      const want = { string: 'a string', number: 'a number', boolean: 'true or false', object: 'an object', id: 'a number or a string' }[kind];
      report('error', [...at, key], `expected ${want}`);
    }
  };
  for (const key of ['name', 'description']) check(book, path, key, 'string');
  for (const key of ['scan_depth', 'token_budget']) check(book, path, key, 'number');
  check(book, path, 'recursive_scanning', 'boolean');
  check(book, path, 'extensions', 'object');

  const entries = book.entries;
  if (!Array.isArray(entries)) {
    report('error', [...path, 'entries'], entries === undefined ? 'is required (an array of entries)' : 'expected an array of entries');
    return false;
  }
  if (entries.length > CARD_LIMITS.listItems) {
    report('error', [...path, 'entries'], `has ${entries.length} entries; the limit is ${CARD_LIMITS.listItems}`);
    return false;
  }
  entries.forEach((e, i) => {
    const at = [...path, 'entries', i];
    if (!isObject(e)) {
      report('error', at, 'expected an entry object {keys, content, ...}');
      ok = false;
      return;
    }
    if (e.keys === undefined) {
      report('error', [...at, 'keys'], 'is required (an array of strings)');
      ok = false;
    } else if (!stringList(e.keys, [...at, 'keys'], report)) ok = false;
    if (typeof e.content !== 'string') {
      report('error', [...at, 'content'], e.content === undefined ? 'is required (a string)' : 'expected a string');
      ok = false;
    }
    if (e.secondary_keys !== undefined && e.secondary_keys !== null && !stringList(e.secondary_keys, [...at, 'secondary_keys'], report)) ok = false;
    for (const key of ['enabled', 'case_sensitive', 'use_regex', 'constant', 'selective']) check(e, at, key, 'boolean');
    for (const key of ['insertion_order', 'priority']) check(e, at, key, 'number');
    for (const key of ['name', 'comment', 'position']) check(e, at, key, 'string');
    check(e, at, 'extensions', 'object');
    check(e, at, 'id', 'id');
    if (typeof e.position === 'string' && e.position !== '' && !ENTRY_POSITIONS.has(e.position)) {
      report('warning', [...at, 'position'], `unknown position ${JSON.stringify(e.position)} (expected before_char or after_char); kept as is`);
    }
  });
  return ok;
}

// ---------------------------------------------------------------------------
// Entry points

interface Collector {
  readonly issues: CardIssue[];
  readonly report: Report;
  errors(): number;
}

function collector(chunk?: 'chara' | 'ccv3'): Collector {
  const issues: CardIssue[] = [];
  let errors = 0;
  const report: Report = (severity, path, message, at) => {
    if (severity === 'error') errors++;
    issues.push({ severity, path: formatPath(path), message, ...(chunk ? { chunk } : {}), ...(at ?? {}) });
  };
  return { issues, report, errors: () => errors };
}

function cardFromText(text: string, c: Collector): Card | undefined {
  const doc = parseJsonText(text, c.report);
  if (doc === FAILED) return undefined;
  const card = toCard(doc, c.report);
  return c.errors() > 0 ? undefined : card;
}

const result = (card: Card | undefined, issues: CardIssue[], container: CardContainer | undefined): CardParseResult =>
  card && !issues.some((i) => i.severity === 'error') ? { card, issues, container } : { card: undefined, issues, container };

/** Parses a card from JSON text (a string, or UTF-8 bytes). */
export function parseCardJson(input: string | Uint8Array): CardParseResult {
  const c = collector();
  let text: string;
  if (typeof input === 'string') text = input;
  else {
    if (input.length > CARD_LIMITS.jsonBytes) {
      c.report('error', [], `card JSON is ${input.length} bytes; the limit is ${CARD_LIMITS.jsonBytes}`);
      return result(undefined, c.issues, undefined);
    }
    try {
      text = utf8.decode(input);
    } catch {
      c.report('error', [], 'the file is not valid UTF-8');
      return result(undefined, c.issues, undefined);
    }
  }
  const card = cardFromText(text, c);
  return result(card, c.issues, card ? 'json' : undefined);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Standard base64 (RFC 4648 §4), padding optional. Buffer.from(…, 'base64') skips bad characters silently, so check first. */
function isBase64(s: string): boolean {
  if (/[^A-Za-z0-9+/=]/.test(s)) return false;
  const pad = s.indexOf('=');
  const body = pad < 0 ? s.length : pad;
  if (pad >= 0 && (s.length - pad > 2 || /[^=]/.test(s.slice(pad)) || s.length % 4 !== 0)) return false;
  return body % 4 !== 1;
}

/** The JSON text inside a `chara`/`ccv3` chunk: base64 of UTF-8 (raw JSON is accepted with a warning). */
function chunkJson(text: string, latin1: boolean, c: Collector): string | undefined {
  const compact = text.replace(/\s+/g, '');
  if (compact.startsWith('{')) {
    c.report('warning', [], 'the chunk holds raw JSON, not base64 of it');
    if (!latin1) return text;
    // tEXt/zTXt text is Latin-1 by definition; writers of raw JSON put UTF-8 bytes there.
    try {
      return utf8.decode(Buffer.from(text, 'latin1'));
    } catch {
      c.report('error', [], 'the chunk\'s raw JSON is not valid UTF-8');
      return undefined;
    }
  }
  if (compact === '') {
    c.report('error', [], 'the chunk is empty');
    return undefined;
  }
  if (compact.length > Math.ceil(CARD_LIMITS.jsonBytes / 3) * 4) {
    c.report('error', [], `the chunk decodes to more than the limit of ${CARD_LIMITS.jsonBytes} bytes`);
    return undefined;
  }
  if (!isBase64(compact)) {
    c.report('error', [], 'the chunk is not base64 (expected base64 of UTF-8 JSON)');
    return undefined;
  }
  try {
    return utf8.decode(Buffer.from(compact, 'base64'));
  } catch {
    c.report('error', [], 'the chunk decodes to bytes that are not valid UTF-8');
    return undefined;
  }
}

/**
 * Parses a card from PNG bytes. The `ccv3` chunk is preferred (V3 spec); when
 * it is missing or holds no usable card, the `chara` chunk is read, and the
 * ccv3 chunk's problems become warnings. Keywords match case-insensitively;
 * tEXt, zTXt and iTXt chunks are all read.
 */
export function parseCardPng(bytes: Uint8Array): CardParseResult {
  const png = readPngChunks(bytes);
  if (!png.chunks) {
    return result(undefined, png.issues.map((message) => ({ severity: 'error', path: 'png', message })), undefined);
  }
  const issues: CardIssue[] = [];
  const found: Record<'chara' | 'ccv3', number[]> = { chara: [], ccv3: [] };
  png.chunks.forEach((chunk, i) => {
    const k = textChunkKeyword(chunk)?.toLowerCase();
    if (k === 'chara' || k === 'ccv3') found[k].push(i);
  });
  for (const k of ['ccv3', 'chara'] as const) {
    if (found[k].length > 1) issues.push({ severity: 'warning', path: 'png', message: `${found[k].length} "${k}" chunks; the first (chunk ${found[k][0]}) is read` });
  }
  if (found.ccv3.length === 0 && found.chara.length === 0) {
    issues.push({ severity: 'error', path: 'png', message: 'no "ccv3" or "chara" text chunk: this PNG holds no character card' });
    return result(undefined, issues, undefined);
  }

  const tryChunk = (k: 'chara' | 'ccv3'): { card: Card | undefined; issues: CardIssue[] } => {
    const c = collector(k);
    const index = found[k][0]!;
    const decoded = decodeTextChunk(png.chunks![index]!, index);
    if (typeof decoded === 'string') {
      c.report('error', [], decoded);
      return { card: undefined, issues: c.issues };
    }
    const text = chunkJson(decoded.text, decoded.chunkType !== 'iTXt', c);
    const card = text === undefined ? undefined : cardFromText(text, c);
    if (card && k === 'ccv3' && card.spec !== V3_SPEC) c.report('warning', ['spec'], `the ccv3 chunk holds a ${card.spec} card`);
    return { card: c.errors() > 0 ? undefined : card, issues: c.issues };
  };

  if (found.ccv3.length > 0) {
    const v3 = tryChunk('ccv3');
    if (v3.card || found.chara.length === 0) return result(v3.card, [...issues, ...v3.issues], v3.card ? 'png:ccv3' : undefined);
    const v2 = tryChunk('chara');
    const demoted = v3.issues.map((i) => ({ ...i, severity: 'warning' as const }));
    if (v2.card) {
      issues.push({ severity: 'warning', path: 'png', message: 'the "ccv3" chunk holds no usable card; the card was read from the "chara" chunk' }, ...demoted, ...v2.issues);
      return result(v2.card, issues, 'png:chara');
    }
    return result(undefined, [...issues, ...v3.issues, ...v2.issues], undefined);
  }
  const v2 = tryChunk('chara');
  return result(v2.card, [...issues, ...v2.issues], v2.card ? 'png:chara' : undefined);
}

/**
 * Parses a card from a file's contents: PNG bytes (recognised by the PNG
 * signature), or JSON as bytes or text.
 */
export function parseCard(input: string | Uint8Array): CardParseResult {
  if (typeof input !== 'string' && input.length >= PNG_SIGNATURE.length && PNG_SIGNATURE.every((b, i) => input[i] === b)) {
    return parseCardPng(input);
  }
  return parseCardJson(input);
}

/** Parses a card from an already-parsed JSON value (e.g. a request body); the same checks as parseCardJson after JSON syntax. */
export function parseCardObject(doc: unknown): CardParseResult {
  const c = collector();
  // Round-trip through text: the same limits, and the card owns its objects.
  let text: string | undefined;
  try {
    text = JSON.stringify(doc);
  } catch (err) {
    c.report('error', [], `not JSON data: ${(err as Error).message}`);
  }
  if (text === undefined) {
    if (c.issues.length === 0) c.report('error', [], 'not JSON data');
    return result(undefined, c.issues, undefined);
  }
  const card = cardFromText(text, c);
  return result(card, c.issues, card ? 'json' : undefined);
}
