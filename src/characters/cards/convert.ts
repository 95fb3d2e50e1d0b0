/**
 * Character Card → npcd Character. A card has no persona DSL, triggers or
 * states, so an imported character is a plain one: state `default`, no
 * triggers, persona from `extensions.npcd.persona` or empty. Texts that npcd
 * renders as templates (description, system prompt, greeting) are made
 * template-safe: the card macros {{char}} and {{user}} stay macros, and any
 * other "{{" (SillyTavern's {{random:…}}, {{// …}}, stray braces) is escaped so
 * that it renders as the text it is. Pure: no I/O. See docs/cards.md.
 */
import { type Lorebook, parseCharacterBook } from '../../lore/index.js';
import { type Persona, parsePersona } from '../../persona/index.js';
import { CHARACTER_ID_RE } from '../script.js';
import { compileTemplate, TemplateError } from '../template.js';
import type { Character, CharacterIssue } from '../types.js';
import { formatPath, parseCard } from './card.js';
import { crc32 } from './png.js';
import type { Card, CardContainer, CardIssue, CharacterBook } from './types.js';

/** The key of `data.extensions` that holds npcd's own fields (see docs/cards.md). */
export const NPCD_EXTENSION = 'npcd';
/** What `{{original}}` in a card's system_prompt stands for: npcd's default system prompt (as in dialogue/prompt.ts). */
export const DEFAULT_SYSTEM_PROMPT = 'You are {{char}}. Stay in character.';

export interface CardConversion {
  readonly character: Character | undefined;
  /**
   * `data.character_book` exactly as the card had it (the same object, not
   * copied or changed), for the lorebook module; undefined when the card has
   * none.
   */
  readonly lorebook: CharacterBook | undefined;
  /** Problems (all errors; character is undefined when there are any). */
  readonly issues: readonly CharacterIssue[];
  /**
   * Lorebook problems the lore module works around (a refused regex key, a
   * dropped entry): the character still loads. See docs/cards.md.
   */
  readonly warnings: readonly CharacterIssue[];
}

/**
 * The character id for a card file: its base name without .png/.json,
 * lower-cased, with every run of other characters than a-z and 0-9 turned into
 * "-" (accents are dropped first), at most 64 characters. `default_Seraphina.png`
 * → `default-seraphina`. Empty when nothing usable is left.
 */
export function idFromCardFileName(file: string): string {
  const base = file.split(/[\\/]/).pop() ?? file;
  return slug(base.replace(/\.(png|apng|json)$/i, ''));
}

function slug(text: string): string {
  return text
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, 64)
    .replace(/-+$/, '');
}

const LEGACY_MACROS: Readonly<Record<string, string>> = { '<user>': '{{user}}', '<bot>': '{{char}}', '<char>': '{{char}}' };
/** Older cards write <USER> and <BOT> (TavernAI); they mean {{user}} and {{char}}. */
function modernMacros(text: string): string {
  return text.replace(/<(?:user|bot|char)>/gi, (m) => LEGACY_MACROS[m.toLowerCase()]!);
}

const CARD_MACRO_RE = /\{\{\s*(?:char|user)\s*\}\}/iy;

/**
 * Makes card text safe to compile as an npcd template: `{{char}}` and
 * `{{user}}` (any case, inner spaces allowed) stay as they are; every other
 * brace that would open an action is escaped as a string literal action
 * (`{{"{{"}}` renders "{{"). Macros are found as a left-to-right regex replace
 * finds them (SillyTavern's way), so `{{{char}}}` is "{" + name + "}".
 * Rendering the result gives back the text with only the two macros
 * substituted.
 */
export function templateSafe(text: string): string {
  let out = '';
  let i = 0;
  for (;;) {
    const open = text.indexOf('{{', i);
    if (open < 0) return out + text.slice(i);
    out += text.slice(i, open);
    // The whole run of braces: a macro can only start at its last two.
    let end = open + 2;
    while (text.charCodeAt(end) === 0x7b) end++;
    CARD_MACRO_RE.lastIndex = end - 2;
    const m = CARD_MACRO_RE.exec(text);
    const literal = m ? end - 2 - open : end - open;
    if (literal > 0) out += `{{"${'{'.repeat(literal)}"}}`;
    if (m) out += m[0];
    i = m ? end - 2 + m[0].length : end;
  }
}

const cardText = (text: string): string => templateSafe(modernMacros(text.replace(/\r\n?/g, '\n')).trim());

const START_RE = /^\s*<start>\s*$/i;
const SPEAKER_RE = /^\s*(?:\{\{\s*(char|user)\s*\}\}|<(bot|char|user)>)\s*:[ \t]?(.*)$/i;

/**
 * The character's lines in a card's `mes_example`: blocks start at `<START>`
 * lines; in a block, a line `{{char}}: text` (or `<BOT>:`, or one of `names`
 * followed by ":") starts a line of the character, `{{user}}: …` (or `<USER>:`)
 * one of the user, and other lines continue the current speaker's line.
 * Narration before the first speaker of a block is skipped. Macros in the text
 * stay as they are (<BOT>/<USER> become {{char}}/{{user}}).
 */
export function parseExamples(mesExample: string, names: readonly string[] = []): string[] {
  const prefixes = names.map((n) => n.trim() + ':').filter((p) => p !== ':');
  const startsWithName = (line: string) => prefixes.find((p) => line.slice(0, p.length).toLowerCase() === p.toLowerCase());
  const out: string[] = [];
  let current: string[] | undefined;
  const flush = () => {
    const line = current?.join('\n').trim();
    if (line) out.push(modernMacros(line));
    current = undefined;
  };
  for (const raw of mesExample.replace(/\r\n?/g, '\n').split('\n')) {
    if (START_RE.test(raw)) {
      flush();
      continue;
    }
    const m = SPEAKER_RE.exec(raw);
    const speaker = m ? (m[1] ?? m[2])!.toLowerCase() : undefined;
    const named = speaker ? undefined : startsWithName(raw.trimStart());
    if (speaker === 'user') {
      flush();
      current = undefined;
    } else if (speaker || named) {
      flush();
      current = [m ? m[3]! : raw.trimStart().slice(named!.length).replace(/^[ \t]/, '')];
    } else if (current) current.push(raw);
  }
  flush();
  return out;
}

/**
 * The npcd Character for a card read from `file`:
 * - id: `extensions.npcd.id`, else from the file name (idFromCardFileName),
 *   else from the card's name, else `card-` and a hash of the name;
 * - name: `name`; aliases: V3 `nickname` when it differs;
 * - description: `description`, then "{{char}}'s personality: …" and
 *   "Scenario: …" paragraphs when those fields are set;
 * - persona: `extensions.npcd.persona` (persona DSL text) or '';
 * - systemPrompt: `system_prompt`, `{{original}}` standing for npcd's default;
 * - greeting: `first_mes`; examples: the character's lines of `mes_example`;
 * - userName: `extensions.npcd.user_name` or 'User';
 * - lorebooks: the card's character_book parsed by the lore module;
 * - one state `default`, no triggers.
 */
export function cardToCharacter(card: Card, file: string): CardConversion {
  const issues: CharacterIssue[] = [];
  const d = card.data;
  const base = card.spec === 'chara_card_v1' ? [] : ['data'];
  const issue = (path: readonly (string | number)[], message: string) =>
    issues.push({ file, line: 1, column: 1, message: `${formatPath([...base, ...path])}: ${message}` });

  const ext = d.extensions[NPCD_EXTENSION];
  const npcd = (key: string): string | undefined => {
    if (typeof ext !== 'object' || ext === null || Array.isArray(ext)) return undefined;
    const v = ext[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') {
      issue(['extensions', NPCD_EXTENSION, key], 'expected a string');
      return undefined;
    }
    return v;
  };
  if (ext !== undefined && ext !== null && (typeof ext !== 'object' || Array.isArray(ext))) {
    issue(['extensions', NPCD_EXTENSION], 'expected an object');
  }

  const name = d.name.trim();
  let id = npcd('id');
  if (id !== undefined && !CHARACTER_ID_RE.test(id)) {
    issue(['extensions', NPCD_EXTENSION, 'id'], `must be lower-case letters, digits and - (up to 64), got ${JSON.stringify(id)}`);
  }
  id ??= idFromCardFileName(file) || slug(name) || `card-${crc32(Buffer.from(name, 'utf8')).toString(16).padStart(8, '0')}`;

  const nickname = d.nickname?.trim();
  const aliases = nickname && nickname !== name ? [nickname] : [];
  const description = [
    cardText(d.description),
    d.personality.trim() && `{{char}}'s personality: ${cardText(d.personality)}`,
    d.scenario.trim() && `Scenario: ${cardText(d.scenario)}`,
  ].filter(Boolean).join('\n\n');
  const systemPrompt = cardText(d.system_prompt.replace(/\{\{\s*original\s*\}\}/gi, DEFAULT_SYSTEM_PROMPT));
  const greeting = cardText(d.first_mes);
  const persona = (npcd('persona') ?? '').replace(/\r\n?/g, '\n');
  // An npcd persona carried by the card is checked like a script's.
  let personaSpec: Persona | undefined;
  if (persona.trim()) {
    const parsed = parsePersona(persona);
    for (const p of parsed.issues) if (p.severity === 'error') issue([...base, 'extensions', 'npcd', 'persona'], `persona ${p.line}:${p.column}: ${p.message}`);
    personaSpec = parsed.persona;
  }
  const userName = npcd('user_name')?.trim() || 'User';
  const examples = parseExamples(d.mes_example, [name, ...aliases]);

  // By construction these compile; checked so that a bug shows here, not mid-turn.
  for (const [key, text] of [['description', description], ['system_prompt', systemPrompt], ['first_mes', greeting]] as const) {
    try {
      compileTemplate(text);
    } catch (err) {
      if (!(err instanceof TemplateError)) throw err;
      issue([key], `template: ${err.message}`);
    }
  }

  // The card's lorebook, parsed by the lore module. Its errors mean "this key or
  // entry is ignored" (e.g. a regex key that is invalid or unsafe; the V3 spec
  // says such an entry simply does not match), so they are warnings here; its
  // warnings (defaults filled in) are not reported.
  const lorebook = d.character_book;
  const lorebooks: Lorebook[] = [];
  const warnings: CharacterIssue[] = [];
  if (lorebook) {
    const parsed = parseCharacterBook(lorebook, formatPath([...base, 'character_book']));
    for (const i of parsed.issues) {
      if (i.severity === 'error') warnings.push({ file, line: 1, column: 1, message: `lorebook: ${i.path}: ${i.message}` });
    }
    if (parsed.lorebook) lorebooks.push(parsed.lorebook);
  }

  if (issues.length > 0) return { character: undefined, lorebook, issues, warnings };
  const character: Character = Object.freeze({
    id,
    name,
    aliases: Object.freeze(aliases),
    description,
    persona,
    personaSpec,
    systemPrompt,
    greeting,
    userName,
    examples: Object.freeze(examples),
    initialState: 'default',
    states: Object.freeze(['default']),
    triggers: Object.freeze([]),
    lorebooks: Object.freeze(lorebooks),
    // The card file itself holds the lorebook: no other file to watch.
    lorebookFiles: Object.freeze([]),
    source: file,
  });
  return { character, lorebook, issues, warnings };
}

/** Card issues as character issues (file:line:column), e.g. for the registry's failure list. */
export function cardIssuesToCharacterIssues(issues: readonly CardIssue[], file: string): CharacterIssue[] {
  return issues.map((i) => {
    const where = i.path || '(card)';
    // Positions inside a PNG chunk's JSON are not positions in the file: they go into the message.
    const inChunk = i.chunk !== undefined;
    const pos = inChunk && i.line !== undefined ? ` (line ${i.line}, column ${i.column} of its JSON)` : '';
    return {
      file,
      line: inChunk ? 1 : (i.line ?? 1),
      column: inChunk ? 1 : (i.column ?? 1),
      message: `${inChunk ? `${i.chunk} chunk${pos}: ` : ''}${where}: ${i.message}`,
    };
  });
}

export interface LoadedCard {
  readonly card: Card | undefined;
  readonly container: CardContainer | undefined;
  readonly character: Character | undefined;
  readonly lorebook: CharacterBook | undefined;
  /** Errors: when there are any, character is undefined. */
  readonly issues: readonly CharacterIssue[];
  /** Warnings: reported, the character still loads. */
  readonly warnings: readonly CharacterIssue[];
  /** The file the character belongs to (see `nameFile`). */
  readonly file: string;
}

/**
 * The file name an imported card gets: its npcd id (extensions.npcd.id) when
 * valid, else a slug of its name; the character's id then follows from it.
 */
export function cardFileName(card: Card, ext: 'png' | 'json'): string {
  const npcdId = (card.data.extensions.npcd as { id?: unknown } | undefined)?.id;
  const stem = typeof npcdId === 'string' && CHARACTER_ID_RE.test(npcdId) ? npcdId : idFromCardFileName(`${card.data.name}.json`) || `card-${crc32(new TextEncoder().encode(card.data.name)).toString(16)}`;
  return `${stem}.${ext}`;
}

/**
 * Parses a card file's contents (PNG or JSON) and converts it: parseCard +
 * cardToCharacter. `nameFile`, when given, picks the file the character will
 * belong to from the parsed card (an import names the file after the card).
 */
export function loadCard(input: string | Uint8Array, file: string, nameFile?: (card: Card) => string): LoadedCard {
  const parsed = parseCard(input);
  const warnings = cardIssuesToCharacterIssues(parsed.issues.filter((i) => i.severity === 'warning'), file);
  if (!parsed.card) {
    const errors = cardIssuesToCharacterIssues(parsed.issues.filter((i) => i.severity === 'error'), file);
    return { card: undefined, container: parsed.container, character: undefined, lorebook: undefined, issues: errors, warnings, file };
  }
  if (nameFile) file = nameFile(parsed.card);
  const converted = cardToCharacter(parsed.card, file);
  return {
    file,
    card: parsed.card,
    container: parsed.container,
    character: converted.character,
    lorebook: converted.lorebook,
    issues: converted.issues,
    warnings: [...warnings, ...converted.warnings],
  };
}
