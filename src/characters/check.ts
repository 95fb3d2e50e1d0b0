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
  /** Problems that do not stop a file loading; printed, but the check still passes. */
  readonly warnings: readonly CharacterIssue[];
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

/** A file's problems, its warnings, and the character it defines when it is a script or card that loads. */
function checkOne(file: string): { issues: readonly CharacterIssue[]; warnings?: readonly CharacterIssue[]; character?: Character } {
  if (/\.persona$/i.test(file)) return checkPersonaFile(file);
  if (/\.json$/i.test(file) && !isCharacterFile(file)) return checkLorebookFile(file);
  if (!CHARACTER_FILE_RE.test(file)) return { issues: [{ file, line: 1, column: 1, message: 'not a character file: expected .yaml, .yml, .png, .json or .persona' }] };
  const read = readCharacterFile(file);
  if ('issues' in read) return { issues: read.issues };
  if ('text' in read) return parseCharacterScript(read.text, file, { readFile: readReferencedFile });
  return loadCard(read.bytes, file);
}

type Checked = { issues: CharacterIssue[]; warnings: CharacterIssue[] };

/** Issues of one severity or the other, split. */
function split<T extends { severity: string }>(all: readonly T[], toIssue: (i: T) => CharacterIssue): Checked {
  const out: Checked = { issues: [], warnings: [] };
  for (const i of all) (i.severity === 'error' ? out.issues : out.warnings).push(toIssue(i));
  return out;
}

function checkPersonaFile(file: string): Checked {
  const text = readReferencedFile(file);
  if (text instanceof Error) return { issues: [{ file, line: 1, column: 1, message: text.message }], warnings: [] };
  return split(parsePersona(text).issues, (i) => ({ file, line: i.line, column: i.column, message: i.message }));
}

function checkLorebookFile(file: string): Checked {
  const text = readReferencedFile(file);
  if (text instanceof Error) return { issues: [{ file, line: 1, column: 1, message: text.message }], warnings: [] };
  // Lorebook problems are located by JSON path, not line.
  return split(parseLorebookJson(text).issues, (i) => ({ file, line: 1, column: 1, message: `${i.path}: ${i.message}` }));
}

export function check(paths: readonly string[]): CheckReport {
  const issues: CharacterIssue[] = [];
  const warnings: CharacterIssue[] = [];
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
      const { issues: own, warnings: warned = [], character } = checkOne(file);
      issues.push(...own);
      warnings.push(...warned);
      if (character) issues.push(...folder.apply(file, { character, issues: [] }).issues);
    }
  }
  return { files, issues, warnings };
}

export const CHECK_HELP = `Usage: npcd check PATH...

Validates character files without starting a server: scripts (*.yaml,
*.yml), Character Cards (*.png, *.json), lorebooks (World Info *.json) and
persona DSL files (*.persona). A PATH may be a file or a folder (its scripts
and cards, checked as the server loads them: duplicate ids and names are
problems). Every problem is printed as file:line:column: message, and every
warning (something read anyway, such as an unknown persona trait) as
file:line:column: warning: message. Exits 0 when every file is valid
(warnings or not), 1 when any has a problem, 2 on bad usage.
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
  const { files, issues, warnings } = check(argv);
  for (const issue of issues) out(`${formatIssue(issue)}\n`);
  for (const w of warnings) out(`${formatIssue({ ...w, message: `warning: ${w.message}` })}\n`);
  const bad = new Set(issues.map((i) => i.file)).size;
  const warned = warnings.length > 0 ? `, ${warnings.length} warning${warnings.length === 1 ? '' : 's'}` : '';
  out(`${files} file${files === 1 ? '' : 's'} checked, ${bad} with problems${warned}\n`);
  return issues.length > 0 ? 1 : 0;
}
