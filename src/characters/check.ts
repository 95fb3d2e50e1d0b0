/**
 * `npcd check PATH…`: validates character files without starting a server
 * and prints every problem as `file:line:column: message`. Folders are
 * expanded to the character files they hold.
 */
import { statSync } from 'node:fs';
import { parseLorebookJson } from '../lore/index.js';
import { parsePersona } from '../persona/index.js';
import { loadCard } from './cards/convert.js';
import { CHARACTER_FILE_RE, CharacterRegistry, isCharacterFile, listCharacterFiles, readCharacterFile, readReferencedFile } from './registry.js';
import { formatIssue, parseCharacterScript } from './script.js';
import type { Character, CharacterIssue } from './types.js';

export interface CheckReport {
  readonly files: number;
  readonly issues: readonly CharacterIssue[];
}

/** The files a path names: itself, or a folder's character files. */
function expand(path: string): string[] | CharacterIssue {
  try {
    return statSync(path).isDirectory() ? listCharacterFiles(path) : [path];
  } catch (err) {
    return { file: path, line: 1, column: 1, message: (err as Error).message };
  }
}

/** Checks one file by its kind: a script, a Character Card, a lorebook, or a persona. */
export function checkFile(file: string): CharacterIssue[] {
  return [...checkOne(file).issues];
}

/** A file's problems, and the character it defines when it is a script or card that loads. */
function checkOne(file: string): { issues: readonly CharacterIssue[]; character?: Character } {
  if (/\.persona$/i.test(file)) return { issues: checkPersonaFile(file) };
  if (/\.json$/i.test(file) && !isCharacterFile(file)) return { issues: checkLorebookFile(file) };
  if (!CHARACTER_FILE_RE.test(file)) return { issues: [{ file, line: 1, column: 1, message: 'not a character file: expected .yaml, .yml, .png, .json or .persona' }] };
  const read = readCharacterFile(file);
  if ('issues' in read) return { issues: read.issues };
  if ('text' in read) return parseCharacterScript(read.text, file, { readFile: readReferencedFile });
  return loadCard(read.bytes, file);
}

function checkPersonaFile(file: string): CharacterIssue[] {
  const text = readReferencedFile(file);
  if (text instanceof Error) return [{ file, line: 1, column: 1, message: text.message }];
  return parsePersona(text).issues.filter((i) => i.severity === 'error').map((i) => ({ file, line: i.line, column: i.column, message: i.message }));
}

function checkLorebookFile(file: string): CharacterIssue[] {
  const text = readReferencedFile(file);
  if (text instanceof Error) return [{ file, line: 1, column: 1, message: text.message }];
  // Lorebook problems are located by JSON path, not line.
  return parseLorebookJson(text).issues.filter((i) => i.severity === 'error').map((i) => ({ file, line: 1, column: 1, message: `${i.path}: ${i.message}` }));
}

export function check(paths: readonly string[]): CheckReport {
  const issues: CharacterIssue[] = [];
  let files = 0;
  for (const path of paths) {
    const expanded = expand(path);
    if (!Array.isArray(expanded)) {
      issues.push(expanded);
      continue;
    }
    // A folder is loaded as the server loads it, in name order: a file whose
    // id or name an earlier one took is refused there, so it is a problem here.
    const folder = new CharacterRegistry();
    for (const file of expanded) {
      files++;
      const { issues: own, character } = checkOne(file);
      issues.push(...own);
      if (character) issues.push(...folder.apply(file, { character, issues: [] }).issues);
    }
  }
  return { files, issues };
}

export const CHECK_HELP = `Usage: npcd check PATH...

Validates character files without starting a server: scripts (*.yaml,
*.yml), Character Cards (*.png, *.json), lorebooks (World Info *.json) and
persona DSL files (*.persona). A PATH may be a file or a folder (its scripts
and cards). Every problem is
printed as file:line:column: message. Exits 0 when every file is valid,
1 when any has a problem, 2 on bad usage.
`;

export function runCheck(argv: readonly string[], out: (s: string) => void): number {
  if (argv.includes('--help') || argv.includes('-h')) {
    out(CHECK_HELP);
    return 0;
  }
  const unknown = argv.find((a) => a.startsWith('-'));
  if (unknown || argv.length === 0) {
    out(unknown ? `npcd check: unknown option ${unknown}\n\n${CHECK_HELP}` : CHECK_HELP);
    return 2;
  }
  const { files, issues } = check(argv);
  for (const issue of issues) out(`${formatIssue(issue)}\n`);
  const bad = new Set(issues.map((i) => i.file)).size;
  out(`${files} file${files === 1 ? '' : 's'} checked, ${bad} with problems\n`);
  return issues.length > 0 ? 1 : 0;
}
