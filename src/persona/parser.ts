/**
 * Persona DSL parser: tokens → statements. Pure and total.
 *
 *   persona   = { separator } [ statement { separator { separator } statement } { separator } ]
 *   statement = key ":" value
 *   value     = number | string | identifier | list
 *   list      = "[" [ value { "," value } [ "," ] ] "]"      (line breaks allowed inside)
 *   separator = ";" | line break
 *
 * Error recovery: after an error the rest of the statement is skipped up to
 * the next ";" or the next line break outside any list, and parsing goes on,
 * so that every broken statement is reported once. A statement that has a key
 * but no readable value is still returned, with an `invalid` value: the key
 * counts as present (no "missing trust" after a typo in its value) and
 * validation does not report it again. An `invalid` token (already reported
 * by the lexer) is taken without a second error.
 */
import { atPosition, clip, IssueSink } from './issues.js';
import { MAX_LIST_DEPTH, MAX_STATEMENTS } from './limits.js';
import type { InvalidNode, ListNode, ParseResult, Position, Statement, Token, ValueNode } from './types.js';

/** How a token is named in messages: `";"`, `identifier "foo"`, `a line break`. */
export function describeToken(t: Token): string {
  switch (t.kind) {
    case 'newline': return 'a line break';
    case 'eof': return 'the end of the text';
    case 'identifier': return `identifier "${clip(t.value)}"`;
    case 'number': return `number ${clip(t.text)}`;
    case 'string': return `string ${JSON.stringify(clip(t.value))}`;
    default: return `"${clip(t.text)}"`;
  }
}

const invalidAt = (p: Position): InvalidNode => ({ kind: 'invalid', line: p.line, column: p.column });

export function parse(tokens: readonly Token[]): ParseResult {
  const sink = new IssueSink();
  const statements: Statement[] = [];
  const list: readonly Token[] = Array.isArray(tokens) ? tokens : [];
  const end = endToken(list);
  /** Open "[" tokens of the list being read; left as they were when an error occurred, for recovery. */
  const open: Token[] = [];
  let pos = 0;

  const peek = (k = 0): Token => {
    const t = list[pos + k];
    return t === undefined || t.kind === 'eof' ? end : t;
  };
  const error = (t: Position, message: string) => sink.add(t, message);
  /** An identifier followed by ":" at the start of a line: a statement, even inside an unclosed list. */
  const atStatementStart = (): boolean =>
    peek().kind === 'identifier' && peek(1).kind === 'colon' && pos > 0 && list[pos - 1]?.kind === 'newline';

  let count = 0;
  for (;;) {
    while (peek().kind === 'semicolon' || peek().kind === 'newline') pos++;
    const t = peek();
    if (t.kind === 'eof') break;
    if (sink.full) {
      // Past the cap the sink keeps only the fact that something was dropped,
      // which ends the list of issues with a "too many problems" note.
      error(t, 'the rest is not read');
      break;
    }
    if (++count > MAX_STATEMENTS) {
      error(t, `too many statements: expected at most ${MAX_STATEMENTS}; the rest is not read`);
      break;
    }
    statement();
    open.length = 0;
  }
  return { statements, errors: sink.issues };

  function statement(): void {
    const key = peek();
    if (key.kind === 'invalid') return recover();
    if (key.kind !== 'identifier') {
      const hint = key.kind === 'string' ? '; keys are written without quotes' : '';
      error(key, `expected a key at the start of a statement, found ${describeToken(key)}${hint}`);
      return recover();
    }
    pos++;
    const colon = peek();
    if (colon.kind !== 'colon') {
      if (colon.kind !== 'invalid') {
        const hint = colon.kind === 'identifier' ? '; keys cannot contain spaces (use "_")' : '';
        error(colon, `expected ":" after the key "${clip(key.value)}", found ${describeToken(colon)}${hint}`);
      }
      statements.push({ key: key.value, line: key.line, column: key.column, value: invalidAt(colon) });
      return recover();
    }
    pos++;
    const at = peek();
    const v = value();
    if (v === undefined) {
      // "trust:⏎0.7": the value went onto the next line. Say so, and skip that
      // line too rather than report it as a statement without a key.
      let next = 0;
      while (peek(next).kind === 'newline') next++;
      const moved = next > 0 && isValueStart(peek(next)) && peek(next + 1).kind !== 'colon';
      const hint = moved ? '; the value goes on the same line as its key' : '';
      error(at, `expected a value (number, string, identifier or list) after ":", found ${describeToken(at)}${hint}`);
      statements.push({ key: key.value, line: key.line, column: key.column, value: invalidAt(at) });
      if (moved) pos += next;
      return recover();
    }
    statements.push({ key: key.value, line: key.line, column: key.column, value: v });
    if (open.length > 0) return recover(); // a list failed and reported its own error
    const after = peek();
    if (after.kind === 'semicolon' || after.kind === 'newline' || after.kind === 'eof') return;
    if (after.kind === 'invalid') return recover();
    if (after.kind === 'identifier' && peek(1).kind === 'colon') {
      // "a: 1 b: 2": a forgotten separator; read on from "b" so it is checked too.
      error(after, `expected ";" or a line break before the next key "${clip(after.value)}"`);
      return;
    }
    let hint = '';
    if (after.kind === 'comma') hint = '; several values are written as a list: [a, b]';
    else if (v.kind === 'identifier' && (after.kind === 'identifier' || after.kind === 'number')) hint = '; text with spaces is written in quotes: "…"';
    error(after, `expected ";" or a line break after the value of "${clip(key.value)}", found ${describeToken(after)}${hint}`);
    recover();
  }

  /**
   * A value, or undefined when no value starts here (nothing consumed,
   * nothing reported). A list that fails reports its error and returns an
   * invalid node, leaving `open` non-empty.
   */
  function value(): ValueNode | undefined {
    const t = peek();
    switch (t.kind) {
      case 'number':
        pos++;
        return { kind: 'number', value: t.value, line: t.line, column: t.column };
      case 'string':
      case 'identifier':
        pos++;
        return { kind: t.kind, value: t.value, line: t.line, column: t.column };
      case 'invalid':
        pos++;
        return invalidAt(t);
      case 'lbracket':
        return listValue();
      default:
        return undefined;
    }
  }

  function skipLineBreaks(): boolean {
    let skipped = false;
    while (peek().kind === 'newline') {
      pos++;
      skipped = true;
    }
    return skipped;
  }

  /** A list; on error returns an invalid node and leaves `open` non-empty so the caller recovers. */
  function listValue(): ValueNode {
    const bracket = peek();
    if (open.length >= MAX_LIST_DEPTH) {
      error(bracket, `lists nested too deep: expected at most ${MAX_LIST_DEPTH} levels of [ ]`);
      open.push(bracket);
      return invalidAt(bracket);
    }
    pos++;
    open.push(bracket);
    const items: ValueNode[] = [];
    const fail = (t: Token, expected: string): ValueNode => {
      const broke = pos > 0 && list[pos - 1]?.kind === 'newline';
      if (t.kind === 'eof' || (broke && atStatementStart())) {
        const found = t.kind === 'eof' ? describeToken(t) : `the next statement "${clip(t.value as string)}:"`;
        sink.add(t, `unterminated list: expected "]" to close the "[" ${atPosition(bracket)}, found ${found}`, 'error', bracket);
      } else if (t.kind !== 'invalid') {
        error(t, `expected ${expected}, found ${describeToken(t)}`);
      }
      return invalidAt(bracket);
    };
    for (;;) {
      skipLineBreaks();
      let t = peek();
      if (t.kind === 'rbracket') break;
      if (t.kind === 'eof' || atStatementStart()) return fail(t, '');
      const item = value();
      if (item === undefined) return fail(t, 'a list item (number, string, identifier or list) or "]"');
      if (open.at(-1) !== bracket) return invalidAt(bracket); // a nested list failed
      items.push(item);
      skipLineBreaks();
      t = peek();
      if (t.kind === 'comma') {
        pos++;
        continue;
      }
      if (t.kind === 'rbracket') break;
      return fail(t, '"," or "]" after a list item');
    }
    pos++;
    open.pop();
    const node: ListNode = { kind: 'list', items, line: bracket.line, column: bracket.column };
    return node;
  }

  /** Skips to the end of the broken statement (see the module comment). */
  function recover(): void {
    let depth = open.length;
    for (;;) {
      const t = peek();
      if (t.kind === 'eof' || t.kind === 'semicolon') return;
      if (t.kind === 'newline' && depth === 0) return;
      if (atStatementStart()) return;
      if (t.kind === 'lbracket') depth++;
      else if (t.kind === 'rbracket') depth = Math.max(0, depth - 1);
      pos++;
    }
  }
}

/** The last token if it is the end, else an end placed just after the last token. */
function endToken(tokens: readonly Token[]): Token {
  const last = tokens.at(-1);
  if (last === undefined) return { kind: 'eof', value: '', text: '', line: 1, column: 1, offset: 0 };
  if (last.kind === 'eof') return last;
  if (last.kind === 'newline') return { kind: 'eof', value: '', text: '', line: last.line + 1, column: 1, offset: last.offset + last.text.length };
  return { kind: 'eof', value: '', text: '', line: last.line, column: last.column + [...last.text].length, offset: last.offset + last.text.length };
}

const isValueStart = (t: Token): boolean =>
  t.kind === 'number' || t.kind === 'string' || t.kind === 'identifier' || t.kind === 'lbracket' || t.kind === 'invalid';
