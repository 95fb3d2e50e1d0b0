/**
 * The registry of loaded characters, addressed by id or by name. A turn takes
 * one Character object at its start and uses it to the end, so replacing an
 * entry (hot reload) never changes a turn in progress.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { NpcdError } from '../errors.js';
import { formatIssue, parseCharacterScript } from './script.js';
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
    let names: string[];
    try {
      names = readdirSync(dir).filter((n) => /\.ya?ml$/i.test(n)).sort();
    } catch (cause) {
      throw new NpcdError('ERR_CONFIG_INVALID', `--characters ${dir}: ${(cause as Error).message}`, { cause });
    }
    const loaded: Character[] = [];
    const failed: CharacterIssue[] = [];
    for (const name of names) {
      const file = join(dir, name);
      const result = this.loadFile(file);
      if (result.character) loaded.push(result.character);
      failed.push(...result.issues);
    }
    return { loaded, failed };
  }

  loadFile(file: string): { character?: Character; issues: CharacterIssue[] } {
    const fail = (message: string) => {
      const issues = [{ file, line: 1, column: 1, message }];
      this.failures.set(file, issues);
      return { issues };
    };
    let text: string;
    try {
      const size = statSync(file).size;
      if (size > MAX_SCRIPT_BYTES) return fail(`file is ${size} bytes; the limit is ${MAX_SCRIPT_BYTES}`);
      text = readFileSync(file, 'utf8');
    } catch (err) {
      return fail((err as Error).message);
    }
    const { character, issues } = parseCharacterScript(text, file);
    if (!character) {
      this.failures.set(file, issues);
      return { issues: [...issues] };
    }
    try {
      this.set(character);
    } catch (err) {
      return fail((err as NpcdError).message);
    }
    this.failures.delete(file);
    return { character, issues: [] };
  }
}

export { formatIssue };
