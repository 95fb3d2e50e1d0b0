/**
 * Character scripts: YAML (see docs/characters.md) parsed and validated into an
 * immutable Character. Every problem is reported with file:line:column, and all
 * problems in one file are reported together. Pure: files a script refers to
 * (lorebooks) are read through the caller's `readFile`.
 */
import { dirname, resolve } from 'node:path';
import { isMap, isScalar, LineCounter, type Node, parseDocument } from 'yaml';
import { type Lorebook, parseLorebookJson } from '../lore/index.js';
import { atPosition, NUMERIC_TRAIT_KEYS, type NumericTraitKey, type Persona, parsePersona, parseTraitCondition, type TraitCondition, traitSpec } from '../persona/index.js';
import { checkRegex } from './safe-regex.js';
import { compileTemplate, type Template, TemplateError } from './template.js';
import type { Character, CharacterIssue, TraitAdjustment, Trigger } from './types.js';

export const CHARACTER_ID_RE = /^[a-z0-9][a-z0-9-]{0,63}$/;
const MAX_ALIASES = 100;
const TOP_KEYS = [
  'id', 'name', 'aliases', 'description', 'persona', 'system_prompt', 'greeting', 'user_name',
  'examples', 'initial_state', 'states', 'triggers', 'lorebooks',
] as const;
const TRIGGER_KEYS = ['on_mention', 'on_keyword', 'on_regex', 'in_state', 'if_trait', 'respond', 'goto', 'adjust'] as const;
const STATE_RE = /^[\p{L}\p{N}_-]{1,64}$/u;

/** Largest lorebook file read for a script. */
export const MAX_LOREBOOK_BYTES = 4 * 1024 * 1024;

export interface ParseOptions {
  /**
   * Reads a file a script refers to (its `lorebooks`), by absolute path;
   * returns the text or an Error. Without it, `lorebooks` is an error:
   * parsing itself does no I/O.
   */
  readonly readFile?: (path: string) => string | Error;
}

export interface ParseResult {
  readonly character: Character | undefined;
  readonly issues: readonly CharacterIssue[];
  /** Problems that do not stop the character loading (an unknown persona trait, a lorebook entry that can never activate). */
  readonly warnings?: readonly CharacterIssue[];
}

type Path = readonly (string | number)[];

/** Derives a character id from a file name: the base name without .yaml/.yml, lower-cased. */
export function idFromFileName(file: string): string {
  const base = file.split(/[\\/]/).pop() ?? file;
  return base.replace(/\.(ya?ml)$/i, '').toLowerCase();
}

export function parseCharacterScript(text: string, file: string, options: ParseOptions = {}): ParseResult {
  const issues: CharacterIssue[] = [];
  const warnings: CharacterIssue[] = [];
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });

  const at = (offset: number | undefined, message: string) => {
    const { line, col } = offset === undefined ? { line: 1, col: 1 } : lineCounter.linePos(offset);
    issues.push({ file, line, column: col, message });
  };
  for (const e of doc.errors) at(e.pos[0], e.message.split('\n')[0]!);
  if (issues.length > 0) return { character: undefined, issues };

  let data: unknown;
  try {
    // Alias bombs ("billion laughs") expand here; a low cap refuses them.
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    at(0, (err as Error).message);
    return { character: undefined, issues };
  }
  const root = doc.contents;
  if (!isMap(root) || data === null || typeof data !== 'object' || Array.isArray(data)) {
    at(root?.range?.[0], 'a character script must be a YAML map (name: ..., triggers: ...)');
    return { character: undefined, issues };
  }
  const obj = data as Record<string, unknown>;

  const nodeAt = (path: Path): Node | undefined => {
    const n = doc.getIn(path, true);
    return n && typeof n === 'object' && 'range' in n ? (n as Node) : undefined;
  };
  const issue = (path: Path, message: string) => at(nodeAt(path)?.range?.[0], message);
  const keyIssues = (mapPath: Path, allowed: readonly string[], what: string) => {
    const map = mapPath.length === 0 ? root : doc.getIn(mapPath, true);
    if (!isMap(map)) return;
    for (const pair of map.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      if (!allowed.includes(key)) {
        const offset = isScalar(pair.key) ? pair.key.range?.[0] : undefined;
        at(offset, `unknown ${what} key ${JSON.stringify(key)}; expected one of ${allowed.join(', ')}`);
      }
    }
  };
  keyIssues([], TOP_KEYS, 'character');

  const str = (key: string, required: boolean, fallback = ''): string => {
    const v = obj[key];
    if (v === undefined || v === null) {
      if (required) at(root.range?.[0], `missing required key "${key}"`);
      return fallback;
    }
    if (typeof v !== 'string' && typeof v !== 'number') {
      issue([key], `"${key}" must be a string`);
      return fallback;
    }
    return String(v);
  };
  const strList = (path: Path, v: unknown, what: string): string[] => {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      issue(path, `"${what}" must be a list of strings`);
      return [];
    }
    const out: string[] = [];
    v.forEach((item, i) => {
      if (typeof item === 'string' || typeof item === 'number') out.push(String(item));
      else issue([...path, i], `each entry of "${what}" must be a string`);
    });
    return out;
  };
  const template = (path: Path, source: string): Template | undefined => {
    try {
      return compileTemplate(source);
    } catch (err) {
      if (!(err instanceof TemplateError)) throw err;
      const { line, col } = lineCounter.linePos(templateOffset(text, nodeAt(path), source, err.offset));
      issues.push({ file, line, column: col, message: `template: ${err.message}` });
      return undefined;
    }
  };

  const name = str('name', true).trim();
  if (typeof obj.name === 'string' && name === '') issue(['name'], '"name" must not be empty');
  const idText = obj.id === undefined ? idFromFileName(file) : str('id', false);
  if (!CHARACTER_ID_RE.test(idText)) {
    if (obj.id === undefined) {
      at(root.range?.[0], `file name gives the id ${JSON.stringify(idText)}, which is not valid; add "id:" (lower-case letters, digits and -, up to 64)`);
    } else issue(['id'], `"id" must be lower-case letters, digits and - (up to 64), got ${JSON.stringify(idText)}`);
  }
  const aliases = strList(['aliases'], obj.aliases, 'aliases').map((a) => a.trim()).filter(Boolean);
  if (aliases.length > MAX_ALIASES) issue(['aliases'], `at most ${MAX_ALIASES} aliases`);
  const examples = strList(['examples'], obj.examples, 'examples');

  // States: declared list, or just the initial state.
  const initialState = str('initial_state', false, '').trim();
  let states = strList(['states'], obj.states, 'states').map((s) => s.trim());
  states.forEach((s, i) => {
    if (!STATE_RE.test(s)) issue(['states', i], `state name ${JSON.stringify(s)} must be 1-64 letters, digits, _ or -`);
  });
  if (new Set(states).size !== states.length) issue(['states'], 'state names must be unique');
  if (states.length === 0) states = [initialState || 'default'];
  const initial = initialState || states[0]!;
  if (!states.includes(initial)) issue(['initial_state'], `initial_state ${JSON.stringify(initial)} is not in states [${states.join(', ')}]`);

  const stateRef = (path: Path, v: unknown): string | undefined => {
    if (typeof v !== 'string') {
      issue(path, 'a state name must be a string');
      return undefined;
    }
    if (!states.includes(v)) {
      issue(path, `unknown state ${JSON.stringify(v)}; states are [${states.join(', ')}]`);
      return undefined;
    }
    return v;
  };

  for (const key of ['description', 'system_prompt', 'greeting'] as const) {
    if (obj[key] !== undefined) template([key], str(key, false));
  }

  // The persona DSL, its problems placed in the file.
  let personaSpec: Persona | undefined;
  if (obj.persona !== undefined && obj.persona !== null) {
    const personaText = str('persona', false);
    const parsed = parsePersona(personaText);
    const node = nodeAt(['persona']);
    const inFile = (pos: { line: number; column: number }) => {
      const { line, col } = lineCounter.linePos(personaOffset(text, node, pos.line, pos.column));
      return { line, column: col };
    };
    for (const p of parsed.issues) {
      const { line, column } = inFile(p);
      // A second position the message names is placed in the file too.
      const message = p.related ? p.message.replace(atPosition(p.related), atPosition(inFile(p.related))) : p.message;
      (p.severity === 'error' ? issues : warnings).push({ file, line, column, message: `persona: ${message}` });
    }
    personaSpec = parsed.persona;
  }

  const triggers: Trigger[] = [];
  const rawTriggers = obj.triggers;
  if (rawTriggers !== undefined && rawTriggers !== null && !Array.isArray(rawTriggers)) {
    issue(['triggers'], '"triggers" must be a list');
  } else if (Array.isArray(rawTriggers)) {
    rawTriggers.forEach((raw, index) => {
      const path = ['triggers', index];
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
        issue(path, 'each trigger must be a map');
        return;
      }
      keyIssues(path, TRIGGER_KEYS, 'trigger');
      const t = raw as Record<string, unknown>;
      let onMention = false;
      if (t.on_mention !== undefined) {
        if (typeof t.on_mention !== 'boolean') issue([...path, 'on_mention'], '"on_mention" must be true or false');
        else onMention = t.on_mention;
      }
      const keywordsRaw = typeof t.on_keyword === 'string' ? [t.on_keyword] : t.on_keyword;
      const keywords = strList([...path, 'on_keyword'], keywordsRaw, 'on_keyword')
        .map((k) => k.toLowerCase())
        .filter((k) => k.trim() !== '');
      let regex: RegExp | undefined;
      if (t.on_regex !== undefined) {
        if (typeof t.on_regex !== 'string') issue([...path, 'on_regex'], '"on_regex" must be a string');
        else {
          const problem = checkRegex(t.on_regex, 'iu');
          if (problem) issue([...path, 'on_regex'], `on_regex: ${problem}`);
          else regex = new RegExp(t.on_regex, 'iu');
        }
      }
      let inStates: Set<string> | undefined;
      if (t.in_state !== undefined) {
        const list = Array.isArray(t.in_state) ? t.in_state : [t.in_state];
        inStates = new Set();
        list.forEach((s, i) => {
          const ok = stateRef(Array.isArray(t.in_state) ? [...path, 'in_state', i] : [...path, 'in_state'], s);
          if (ok) inStates!.add(ok);
        });
      }
      let respond: Template | undefined;
      if (t.respond !== undefined) {
        if (typeof t.respond !== 'string') issue([...path, 'respond'], '"respond" must be a string');
        else respond = template([...path, 'respond'], t.respond);
      }
      const goto = t.goto === undefined ? undefined : stateRef([...path, 'goto'], t.goto);
      if (!onMention && keywords.length === 0 && t.on_regex === undefined) {
        issue(path, 'a trigger needs a condition: on_mention, on_keyword or on_regex');
      }
      if (t.respond === undefined && t.goto === undefined && t.adjust === undefined) issue(path, 'a trigger needs an action: respond, goto or adjust');
      // Persona conditions and changes.
      const traitConditions: TraitCondition[] = [];
      if (t.if_trait !== undefined) {
        const list = Array.isArray(t.if_trait) ? t.if_trait : [t.if_trait];
        list.forEach((c, i) => {
          const p: Path = Array.isArray(t.if_trait) ? [...path, 'if_trait', i] : [...path, 'if_trait'];
          if (typeof c !== 'string') return issue(p, '"if_trait" must be a condition like "trust < 0.3", or a list of them');
          if (!personaSpec && obj.persona === undefined) return issue(p, '"if_trait" needs the character to have a persona');
          const r = parseTraitCondition(c);
          if ('error' in r) issue(p, `if_trait: ${r.error} (at column ${r.column} of the condition)`);
          else traitConditions.push(r.condition);
        });
      }
      const adjust: TraitAdjustment[] = [];
      if (t.adjust !== undefined) {
        const a = t.adjust;
        if (a === null || typeof a !== 'object' || Array.isArray(a)) issue([...path, 'adjust'], '"adjust" must be a map of numeric traits to changes, e.g. {trust: -0.2} or {trust: {set: 0.1}}');
        else if (!personaSpec && obj.persona === undefined) issue([...path, 'adjust'], '"adjust" needs the character to have a persona');
        else {
          for (const [key, v] of Object.entries(a as Record<string, unknown>)) {
            const spec = traitSpec(key);
            const p: Path = [...path, 'adjust', key];
            if (!spec || spec.type !== 'number') {
              issue(p, `adjust: ${JSON.stringify(key)} is not a numeric trait; expected one of ${NUMERIC_TRAIT_KEYS.join(', ')}`);
              continue;
            }
            const set = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>).set : undefined;
            if (typeof v === 'number' && Number.isFinite(v)) adjust.push({ key: key as NumericTraitKey, change: v });
            else if (typeof set === 'number' && Number.isFinite(set)) adjust.push({ key: key as NumericTraitKey, change: { set } });
            else issue(p, `adjust.${key} must be a number (a change) or {set: number}`);
          }
        }
      }
      triggers.push({ index, onMention, keywords, regex, inStates, respond, goto, traitConditions, adjust });
    });
  }

  // Lorebooks (SillyTavern World Info or card character_book JSON), relative to the script.
  const lorebooks: Lorebook[] = [];
  const lorebookFiles: string[] = [];
  strList(['lorebooks'], obj.lorebooks, 'lorebooks').forEach((name, i) => {
    const path = resolve(dirname(file), name);
    const text = options.readFile ? options.readFile(path) : new Error('this reader cannot open files');
    lorebookFiles.push(path);
    if (text instanceof Error) return issue(['lorebooks', i], `lorebook ${JSON.stringify(name)}: ${text.message}`);
    const parsed = parseLorebookJson(text);
    const errors = parsed.issues.filter((p) => p.severity === 'error');
    for (const e of errors.slice(0, 20)) issue(['lorebooks', i], `lorebook ${JSON.stringify(name)}: ${e.path}: ${e.message}`);
    const where = nodeAt(['lorebooks', i])?.range?.[0];
    const pos = where === undefined ? { line: 1, col: 1 } : lineCounter.linePos(where);
    for (const w of parsed.issues.filter((p) => p.severity !== 'error').slice(0, 20)) {
      warnings.push({ file, line: pos.line, column: pos.col, message: `lorebook ${JSON.stringify(name)}: ${w.path}: ${w.message}` });
    }
    if (parsed.lorebook && errors.length === 0) lorebooks.push(parsed.lorebook);
  });

  if (issues.length > 0) return { character: undefined, issues };
  const character: Character = Object.freeze({
    id: idText,
    name,
    aliases: Object.freeze(aliases),
    description: str('description', false),
    persona: str('persona', false),
    personaSpec,
    systemPrompt: str('system_prompt', false),
    greeting: str('greeting', false),
    userName: str('user_name', false, 'User').trim() || 'User',
    examples: Object.freeze(examples),
    lorebooks: Object.freeze(lorebooks),
    lorebookFiles: Object.freeze(lorebookFiles),
    initialState: initial,
    states: Object.freeze(states),
    triggers: Object.freeze(triggers),
    source: file,
  });
  return { character, issues, warnings };
}

/**
 * Where in the file a template error is. YAML quoting, escapes and block
 * indentation make decoded offsets differ from file offsets, so the error is
 * located by its action: the k-th "{{" of the template is the k-th "{{" of the
 * scalar's source text, and the offset inside the action carries over (exact
 * unless the action itself holds escapes or line breaks).
 */
function templateOffset(text: string, node: Node | undefined, template: string, errorOffset: number): number {
  const range = node?.range;
  if (!range) return 0;
  const actionStart = template.lastIndexOf('{{', errorOffset);
  if (actionStart < 0) return range[0];
  let k = 0;
  for (let i = template.indexOf('{{'); i >= 0 && i < actionStart; i = template.indexOf('{{', i + 2)) k++;
  const src = text.slice(range[0], range[1]);
  let pos = src.indexOf('{{');
  for (let j = 0; j < k && pos >= 0; j++) pos = src.indexOf('{{', pos + 2);
  return pos < 0 ? range[0] : range[0] + pos + (errorOffset - actionStart);
}

/**
 * Where in the file a persona problem is: the persona's line and column
 * (code points) inside its YAML scalar. A quoted scalar on one line starts
 * after its quote; a block scalar's lines start after its indentation.
 * (Escapes inside quotes can shift the column.)
 */
function personaOffset(text: string, node: Node | undefined, line: number, column: number): number {
  const start = node?.range?.[0];
  if (start === undefined) return 0;
  const src = text.slice(start, node!.range![1]);
  const first = src[0];
  if (first === '|' || first === '>') {
    // Block scalar: content lines follow the header line.
    let at = text.indexOf('\n', start) + 1;
    for (let l = 1; l < line && at > 0; l++) at = text.indexOf('\n', at) + 1;
    if (at <= 0) return start;
    const indent = /^[ \t]*/.exec(text.slice(at))![0].length;
    return at + indent + codePointsToUnits(text.slice(at + indent), column - 1);
  }
  const quote = first === '"' || first === "'" ? first : undefined;
  const body = quote ? start + 1 : start;
  // In a quoted scalar an escape (\" \t \x41 \u00e9 in double quotes, '' in single quotes) is one character of the value.
  const units = (s: string, points: number) => (quote ? quotedUnits(s, points, quote) : codePointsToUnits(s, points));
  if (line === 1) return body + units(text.slice(body), column - 1);
  let at = body;
  for (let l = 1; l < line; l++) {
    const nl = text.indexOf('\n', at);
    if (nl < 0) return body;
    at = nl + 1;
  }
  const indent = /^[ \t]*/.exec(text.slice(at))![0].length;
  return at + indent + units(text.slice(at + indent), column - 1);
}

/** Source code units that make up the first `points` characters of a quoted scalar's value. */
function quotedUnits(s: string, points: number, quote: '"' | "'"): number {
  let units = 0;
  for (let i = 0; i < points && units < s.length; i++) {
    const c = s[units];
    if (quote === '"' && c === '\\') {
      const kind = s[units + 1];
      units += kind === 'x' ? 4 : kind === 'u' ? 6 : kind === 'U' ? 10 : 2;
    } else if (quote === "'" && c === "'" && s[units + 1] === "'") units += 2;
    else units += s.codePointAt(units)! > 0xffff ? 2 : 1;
  }
  return units;
}

function codePointsToUnits(s: string, points: number): number {
  let units = 0;
  for (let i = 0; i < points && units < s.length; i++) units += s.codePointAt(units)! > 0xffff ? 2 : 1;
  return units;
}

export function formatIssue(i: CharacterIssue): string {
  return `${i.file}:${i.line}:${i.column}: ${i.message}`;
}
