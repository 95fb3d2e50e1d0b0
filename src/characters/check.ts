/**
 * `npcd check PATH…`: validates character files without starting a server
 * and prints every problem as `file:line:column: message`. Folders are
 * expanded to the character files they hold.
 */
import { statSync } from 'node:fs';
import { CHARACTER_FILE_RE, listCharacterFiles, readCharacterFile, readReferencedFile } from './registry.js';
import { formatIssue, parseCharacterScript } from './script.js';
import type { CharacterIssue } from './types.js';

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

/** Checks one file by its kind (its extension). */
export function checkFile(file: string): CharacterIssue[] {
  if (!CHARACTER_FILE_RE.test(file)) return [{ file, line: 1, column: 1, message: 'not a character file: expected .yaml or .yml' }];
  const read = readCharacterFile(file);
  if (!('text' in read)) return read.issues;
  return [...parseCharacterScript(read.text, file, { readFile: readReferencedFile }).issues];
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
    for (const file of expanded) {
      files++;
      issues.push(...checkFile(file));
    }
  }
  return { files, issues };
}

export const CHECK_HELP = `Usage: npcd check PATH...

Validates character files (YAML scripts) without starting a server. A PATH
may be a file or a folder (its *.yaml / *.yml files). Every problem is
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
