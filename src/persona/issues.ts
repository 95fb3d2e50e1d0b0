/** Collecting, ordering and printing persona issues. */
import { MAX_ISSUES } from './limits.js';
import type { IssueSeverity, PersonaIssue, Position } from './types.js';

const TOO_MANY = `too many problems: only the first ${MAX_ISSUES} are reported`;

/** Shortens text for a message to `max` code points, marking the cut with "…". */
export function clip(s: string, max = 32): string {
  if (s.length <= max) return s;
  const cps = [...s.slice(0, max * 2 + 2)];
  return cps.length > max ? `${cps.slice(0, max).join('')}…` : s;
}

/** How a message names a second position (see PersonaIssue.related). */
export function atPosition(pos: Position): string {
  return `at ${pos.line}:${pos.column}`;
}

/**
 * Collects issues up to MAX_ISSUES; one more issue says that the rest was
 * dropped, so a hostile text cannot produce an unbounded list.
 */
export class IssueSink {
  readonly #kept: PersonaIssue[] = [];
  #dropped: PersonaIssue | undefined;
  #droppedError = false;

  add(at: Position, message: string, severity: IssueSeverity = 'error', related?: Position): void {
    if (this.#kept.length < MAX_ISSUES) {
      this.#kept.push(related ? { line: at.line, column: at.column, message, severity, related: { line: related.line, column: related.column } } : { line: at.line, column: at.column, message, severity });
      return;
    }
    this.#dropped ??= { line: at.line, column: at.column, message: TOO_MANY, severity };
    this.#droppedError ||= severity === 'error';
  }

  /** True once the cap is reached: callers may stop looking for more. */
  get full(): boolean {
    return this.#kept.length >= MAX_ISSUES;
  }

  /**
   * The issues kept, then (when some were dropped) a note at the first dropped
   * one; the note is an error when any dropped issue was.
   */
  get issues(): PersonaIssue[] {
    if (this.#dropped === undefined) return this.#kept;
    return [...this.#kept, { ...this.#dropped, severity: this.#droppedError ? 'error' : 'warning' }];
  }
}

/**
 * Orders issues by position (stable, so issues at one position keep their
 * order) and caps the list at MAX_ISSUES plus one closing note.
 */
export function orderIssues(issues: readonly PersonaIssue[]): PersonaIssue[] {
  const sorted = issues
    .map((issue, index) => ({ issue, index }))
    .sort((a, b) => a.issue.line - b.issue.line || a.issue.column - b.issue.column || a.index - b.index)
    .map((e) => e.issue);
  const isNote = (i: PersonaIssue) => i.message === TOO_MANY;
  const real = sorted.filter((i) => !isNote(i));
  const notes = sorted.filter(isNote);
  if (real.length <= MAX_ISSUES && notes.length === 0) return real;
  const kept = real.slice(0, MAX_ISSUES);
  const dropped = [...real.slice(MAX_ISSUES), ...notes];
  const first = dropped[0]!;
  const severity = dropped.some((i) => i.severity === 'error') ? 'error' : 'warning';
  return [...kept, { line: first.line, column: first.column, message: TOO_MANY, severity }];
}

/**
 * `file:line:column: message` (or `line:column: message`), with "warning: "
 * before the message of a warning, as compilers print them.
 */
export function formatPersonaIssue(issue: PersonaIssue): string {
  const where = `${issue.file === undefined ? '' : `${issue.file}:`}${issue.line}:${issue.column}`;
  return `${where}: ${issue.severity === 'warning' ? 'warning: ' : ''}${issue.message}`;
}
