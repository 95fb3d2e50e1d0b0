/**
 * The registry of loaded characters, addressed by id or by name. A turn takes
 * one Character object at its start and uses it to the end, so replacing an
 * entry (hot reload) never changes a turn in progress.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { NpcdError } from '../errors.js';
import { formatIssue, MAX_LOREBOOK_BYTES, parseCharacterScript } from './script.js';
import type { ParsePool } from './parse-pool.js';
import type { Character, CharacterIssue } from './types.js';

export const MAX_SCRIPT_BYTES = 1024 * 1024;

export class CharacterRegistry {
  private readonly byId = new Map<string, Character>();
  private readonly byName = new Map<string, Character>();
  /** Problems of files that did not load, by file path. */
  readonly failures = new Map<string, readonly CharacterIssue[]>();

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
  apply(file: string, outcome: { character?: Character; issues: readonly CharacterIssue[] }): { character?: Character; issues: CharacterIssue[] } {
    if (!outcome.character) {
      const issues = [...outcome.issues];
      this.failures.set(file, issues);
      return { issues };
    }
    try {
      this.set(outcome.character);
    } catch (err) {
      const issues = [{ file, line: 1, column: 1, message: (err as NpcdError).message }];
      this.failures.set(file, issues);
      return { issues };
    }
    this.failures.delete(file);
    return { character: outcome.character, issues: [] };
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
  loadDirectory(dir: string): { loaded: Character[]; failed: CharacterIssue[] } {
    const loaded: Character[] = [];
    const failed: CharacterIssue[] = [];
    for (const file of listCharacterFiles(dir)) {
      const result = this.loadFile(file);
      if (result.character) loaded.push(result.character);
      failed.push(...result.issues);
    }
    return { loaded, failed };
  }

  /** Parses one file inline and applies it (see `apply`). */
  loadFile(file: string): { character?: Character; issues: CharacterIssue[] } {
    const read = readCharacterFile(file);
    return this.apply(file, 'text' in read ? parseCharacterScript(read.text, file, { readFile: readReferencedFile }) : { issues: read.issues });
  }

  /** Like loadDirectory, parsing in the worker pool. */
  async loadDirectoryWith(dir: string, pool: ParsePool): Promise<{ loaded: Character[]; failed: CharacterIssue[] }> {
    const files = listCharacterFiles(dir);
    const outcomes = await Promise.all(files.map(async (file) => {
      const read = readCharacterFile(file);
      return { file, outcome: 'text' in read ? await pool.parseScript(file, read.text) : { issues: read.issues } };
    }));
    const loaded: Character[] = [];
    const failed: CharacterIssue[] = [];
    for (const { file, outcome } of outcomes) {
      const result = this.apply(file, outcome);
      if (result.character) loaded.push(result.character);
      failed.push(...result.issues);
    }
    return { loaded, failed };
  }
}

/** The character files of a folder (*.yaml, *.yml), sorted. */
export function listCharacterFiles(dir: string): string[] {
  try {
    return readdirSync(dir).filter((n) => CHARACTER_FILE_RE.test(n)).sort().map((n) => join(dir, n));
  } catch (cause) {
    throw new NpcdError('ERR_CONFIG_INVALID', `--characters ${dir}: ${(cause as Error).message}`, { cause });
  }
}

export const CHARACTER_FILE_RE = /\.ya?ml$/i;

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

/** A character file's text, or why it cannot be read (too large, unreadable). */
export function readCharacterFile(file: string): { text: string } | { issues: CharacterIssue[] } {
  try {
    const size = statSync(file).size;
    if (size > MAX_SCRIPT_BYTES) return { issues: [{ file, line: 1, column: 1, message: `file is ${size} bytes; the limit is ${MAX_SCRIPT_BYTES}` }] };
    return { text: readFileSync(file, 'utf8') };
  } catch (err) {
    return { issues: [{ file, line: 1, column: 1, message: (err as Error).message }] };
  }
}

export { formatIssue };
