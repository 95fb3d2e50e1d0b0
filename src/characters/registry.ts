/**
 * The registry of loaded characters, addressed by id or by name. A turn takes
 * one Character object at its start and uses it to the end, so replacing an
 * entry (hot reload) never changes a turn in progress.
 */
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { NpcdError } from '../errors.js';
import { formatIssue, MAX_LOREBOOK_BYTES, parseCharacterScript } from './script.js';
import { CARD_LIMITS } from './cards/card.js';
import { loadCard } from './cards/convert.js';
import type { Card } from './cards/types.js';
import type { ParsePool } from './parse-pool.js';
import type { Character, CharacterIssue } from './types.js';

export const MAX_SCRIPT_BYTES = 1024 * 1024;

export class CharacterRegistry {
  private readonly byId = new Map<string, Character>();
  private readonly byName = new Map<string, Character>();
  /** Problems of files that did not load, by file path. */
  readonly failures = new Map<string, readonly CharacterIssue[]>();
  /** Character Cards as imported, by file path (export writes them back). */
  readonly cards = new Map<string, Card>();

  get size(): number {
    return this.byId.size;
  }

  /** Looks a character up by id, then by exact name, then by case-insensitive name. */
  get(ref: string): Character | undefined {
    return this.byId.get(ref) ?? this.byName.get(ref) ?? this.byName.get(ref.toLowerCase());
  }

  require(ref: string): Character {
    const c = this.get(ref);
    if (!c) throw new NpcdError('ERR_CHARACTER_NOT_FOUND', `no character with id or name ${JSON.stringify(ref.slice(0, 200))}`);
    return c;
  }

  list(): Character[] {
    return [...this.byId.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Adds or replaces a character; rejects an id or name already used by another file. */
  set(character: Character): void {
    // Id and name are checked separately: either may belong to another file.
    const holders = [this.byId.get(character.id), this.byName.get(character.name), this.byName.get(character.name.toLowerCase())];
    const clash = holders.find((c) => c !== undefined && c.source !== character.source);
    if (clash) {
      throw new NpcdError('ERR_CHARACTER_INVALID', `${character.source}: id ${JSON.stringify(character.id)} or name ${JSON.stringify(character.name)} is already used by ${clash.source}`);
    }
    // Replace whatever this file defined before (its id may have changed).
    for (const c of this.byId.values()) if (c.source === character.source) this.delete(c.id);
    this.byId.set(character.id, character);
    this.byName.set(character.name, character);
    this.byName.set(character.name.toLowerCase(), character);
  }

  /** Removes the character a file defined, and its recorded problems; the removed id or undefined. */
  deleteSource(file: string): string | undefined {
    this.failures.delete(file);
    this.cards.delete(file);
    for (const c of this.byId.values()) {
      if (c.source === file) {
        this.delete(c.id);
        return c.id;
      }
    }
    return undefined;
  }

  /** The character a file defines, if it loaded. */
  bySource(file: string): Character | undefined {
    for (const c of this.byId.values()) if (c.source === file) return c;
    return undefined;
  }

  /**
   * Applies the outcome of parsing `file`: a valid character replaces the
   * file's previous one in one step (turns in progress keep the object they
   * took); a failure is recorded and the last good version keeps serving.
   */
  apply(file: string, outcome: ParsedFile): { character?: Character; issues: CharacterIssue[]; warnings: readonly CharacterIssue[] } {
    const warnings = outcome.warnings ?? [];
    if (!outcome.character) {
      const issues = [...outcome.issues];
      this.failures.set(file, issues);
      return { issues, warnings };
    }
    try {
      this.set(outcome.character);
    } catch (err) {
      const issues = [{ file, line: 1, column: 1, message: (err as NpcdError).message }];
      this.failures.set(file, issues);
      return { issues, warnings };
    }
    this.failures.delete(file);
    if (outcome.card) this.cards.set(file, outcome.card);
    else this.cards.delete(file);
    return { character: outcome.character, issues: [], warnings };
  }

  delete(id: string): boolean {
    const c = this.byId.get(id);
    if (!c) return false;
    this.byId.delete(id);
    for (const key of [c.name, c.name.toLowerCase()]) if (this.byName.get(key) === c) this.byName.delete(key);
    return true;
  }

  /**
   * Loads every *.yaml / *.yml file of a folder. Files that fail are recorded in
   * `failures` (and returned) and skipped; the others load.
   */
  loadDirectory(dir: string): DirectoryLoad {
    const loaded: Character[] = [];
    const failed: CharacterIssue[] = [];
    const warnings: CharacterIssue[] = [];
    for (const file of listCharacterFiles(dir)) {
      const result = this.loadFile(file);
      if (result.character) loaded.push(result.character);
      failed.push(...result.issues);
      warnings.push(...result.warnings);
    }
    return { loaded, failed, warnings };
  }

  /** Parses one file inline and applies it (see `apply`). */
  loadFile(file: string): ReturnType<CharacterRegistry['apply']> {
    return this.apply(file, parseInline(file, readCharacterFile(file)));
  }

  /** Like loadDirectory, parsing in the worker pool. */
  async loadDirectoryWith(dir: string, pool: ParsePool): Promise<DirectoryLoad> {
    const files = listCharacterFiles(dir);
    const outcomes = await Promise.all(files.map(async (file) => ({ file, outcome: await pool.parseRead(file, readCharacterFile(file)) })));
    const loaded: Character[] = [];
    const failed: CharacterIssue[] = [];
    const warnings: CharacterIssue[] = [];
    for (const { file, outcome } of outcomes) {
      const result = this.apply(file, outcome);
      if (result.character) loaded.push(result.character);
      failed.push(...result.issues);
      warnings.push(...result.warnings);
    }
    return { loaded, failed, warnings };
  }
}

/**
 * The character files of a folder, sorted: scripts (*.yaml, *.yml) and
 * Character Cards (*.png, and *.json files that hold a card — other JSON,
 * such as lorebooks, is left out).
 */
export function listCharacterFiles(dir: string): string[] {
  try {
    return readdirSync(dir).map((n) => join(dir, n)).filter(isCharacterFile).sort();
  } catch (cause) {
    throw new NpcdError('ERR_CONFIG_INVALID', `--characters ${dir}: ${(cause as Error).message}`, { cause });
  }
}

export const CHARACTER_FILE_RE = /\.(ya?ml|png|json)$/i;
const SCRIPT_RE = /\.ya?ml$/i;

/** The first `bytes` bytes of a file, as UTF-8 text. */
function readHead(file: string, bytes: number): string {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    return buf.toString('utf8', 0, readSync(fd, buf, 0, bytes, 0));
  } finally {
    closeSync(fd);
  }
}

/** Bytes of a JSON file read first to tell a card from a lorebook. */
const HEAD_BYTES = 1 << 16;
/** A card that says so at its start: SillyTavern writes `spec` first, and V1 cards have `first_mes`. */
const CARD_MARK_RE = /"spec"\s*:\s*"chara_card_v[23]"|"first_mes"\s*:/;
/** JSON files without that mark are parsed up to this size to judge their shape; larger ones are not cards. */
const CLASSIFY_PARSE_BYTES = 32 * 1024 * 1024;
/** The text fields of a V1 card (a bare object with the character's fields at the top). */
const V1_CARD_FIELDS = ['description', 'personality', 'scenario', 'first_mes', 'mes_example'];

/**
 * Whether a parsed JSON value is a Character Card rather than a lorebook
 * (World Info, whose entries are at the top): a card names its spec
 * (chara_card_v2/v3), or wraps the character in `data` with a name (V2/V3),
 * or is a V1 card: a name beside any of the card's text fields.
 */
export function looksLikeCard(v: unknown): boolean {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  if (Object.hasOwn(o, 'entries')) return false;
  if (typeof o.spec === 'string' && /^chara_card_v\d/.test(o.spec)) return true;
  const data = o.data;
  if (data !== null && typeof data === 'object' && !Array.isArray(data) && typeof (data as Record<string, unknown>).name === 'string') return true;
  return typeof o.name === 'string' && V1_CARD_FIELDS.some((k) => typeof o[k] === 'string');
}

/**
 * A script or a card. A JSON file that marks itself as a card in its first
 * 64 KiB is one (so is a broken card that does: it is reported, not
 * ignored); any other is parsed here to judge its shape, since an imported
 * card's fields may come in any order and it may lack first_mes. That parse
 * is on the caller's thread, so only files without the mark pay it.
 */
export function isCharacterFile(file: string): boolean {
  if (SCRIPT_RE.test(file) || /\.png$/i.test(file)) return true;
  if (!/\.json$/i.test(file)) return false;
  try {
    const size = statSync(file).size;
    const head = readHead(file, HEAD_BYTES);
    if (CARD_MARK_RE.test(head)) return true;
    if (size > CLASSIFY_PARSE_BYTES) return false;
    try {
      return looksLikeCard(JSON.parse(size <= HEAD_BYTES ? head : readFileSync(file, 'utf8')));
    } catch {
      return false;
    }
  } catch {
    return false;
  }
}

export type CharacterFileRead = { text: string } | { bytes: Uint8Array } | { issues: CharacterIssue[] };

/** Parses a file inline (scripts and cards). */
function parseInline(file: string, read: CharacterFileRead): ParsedFile {
  if ('issues' in read) return { issues: read.issues };
  if ('text' in read) return parseCharacterScript(read.text, file, { readFile: readReferencedFile });
  const loaded = loadCard(read.bytes, file);
  return loaded.character && loaded.card ? { character: loaded.character, issues: [], warnings: loaded.warnings, card: loaded.card } : { issues: loaded.issues, warnings: loaded.warnings };
}

/** What loading a folder gave: the characters, the errors of the files that did not load, and every warning. */
export interface DirectoryLoad {
  readonly loaded: Character[];
  readonly failed: CharacterIssue[];
  readonly warnings: CharacterIssue[];
}

/** A file parsed: its character when it loads, its errors, and the warnings that did not stop it. */
export interface ParsedFile {
  readonly character?: Character;
  readonly issues: readonly CharacterIssue[];
  readonly warnings?: readonly CharacterIssue[];
  readonly card?: Card;
}

/** Reads a file a script refers to (a lorebook), within MAX_LOREBOOK_BYTES. */
export function readReferencedFile(path: string): string | Error {
  try {
    const size = statSync(path).size;
    if (size > MAX_LOREBOOK_BYTES) return new Error(`file is ${size} bytes; the limit is ${MAX_LOREBOOK_BYTES}`);
    return readFileSync(path, 'utf8');
  } catch (err) {
    return err as Error;
  }
}

/** A character file's content (text for scripts, bytes for cards), or why it cannot be read. */
export function readCharacterFile(file: string): CharacterFileRead {
  try {
    const size = statSync(file).size;
    const script = SCRIPT_RE.test(file);
    const limit = script ? MAX_SCRIPT_BYTES : CARD_LIMITS.pngBytes;
    if (size > limit) return { issues: [{ file, line: 1, column: 1, message: `file is ${size} bytes; the limit is ${limit}` }] };
    return script ? { text: readFileSync(file, 'utf8') } : { bytes: readFileSync(file) };
  } catch (err) {
    return { issues: [{ file, line: 1, column: 1, message: (err as Error).message }] };
  }
}

export { formatIssue };
