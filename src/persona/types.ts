/**
 * Shapes that cross the persona module's boundary: tokens, the syntax tree,
 * issues and the validated Persona.
 *
 * Positions are 1-based. Columns count Unicode code points, so a Chinese
 * character or an emoji is one column, as a reader counts them; `offset` is
 * the UTF-16 index into the text, for slicing.
 */
import type { ConflictReaction, Mood, OptionalNumericTraitKey } from './traits.js';

export interface Position {
  readonly line: number;
  readonly column: number;
}

export type PunctuationKind = 'colon' | 'semicolon' | 'comma' | 'lbracket' | 'rbracket';
export type TokenKind = 'identifier' | 'number' | 'string' | PunctuationKind | 'newline' | 'invalid' | 'eof';

interface TokenBase extends Position {
  /** UTF-16 index of the token's first character in the text. */
  readonly offset: number;
  /** The token as written. */
  readonly text: string;
}

export interface NumberToken extends TokenBase {
  readonly kind: 'number';
  readonly value: number;
}

/**
 * Every other token. `value` is the identifier, the decoded string, the
 * punctuation ("\n" for a line break, "" at the end). An `invalid` token
 * stands where the lexer reported an error (its value is the best reading of
 * the text); the parser takes it without a second error.
 */
export interface TextToken extends TokenBase {
  readonly kind: Exclude<TokenKind, 'number'>;
  readonly value: string;
}

export type Token = NumberToken | TextToken;

export interface NumberNode extends Position {
  readonly kind: 'number';
  readonly value: number;
}
export interface StringNode extends Position {
  readonly kind: 'string';
  readonly value: string;
}
export interface IdentifierNode extends Position {
  readonly kind: 'identifier';
  readonly value: string;
}
export interface ListNode extends Position {
  readonly kind: 'list';
  readonly items: readonly ValueNode[];
}
/** A value that could not be read; its error is already reported. Validation skips it. */
export interface InvalidNode extends Position {
  readonly kind: 'invalid';
}
export type ValueNode = NumberNode | StringNode | IdentifierNode | ListNode | InvalidNode;

/** `key: value`; the position is the key's. */
export interface Statement extends Position {
  readonly key: string;
  readonly value: ValueNode;
}

export type IssueSeverity = 'error' | 'warning';

/** One problem, with its position in the persona text (1-based; columns in code points). */
export interface PersonaIssue extends Position {
  /** The file the persona came from, when the caller named one. */
  readonly file?: string;
  readonly message: string;
  /**
   * A second position the message names ("at LINE:COLUMN"), such as where a
   * duplicate key was first set; whoever places the persona in a file maps
   * it too.
   */
  readonly related?: Position;
  /** Errors make the persona invalid; warnings (unknown keys, repeated list items) do not. */
  readonly severity: IssueSeverity;
}

export interface LexResult {
  /** Always ends with one `eof` token. */
  readonly tokens: readonly Token[];
  readonly errors: readonly PersonaIssue[];
}

export interface ParseResult {
  readonly statements: readonly Statement[];
  readonly errors: readonly PersonaIssue[];
}

export interface ValidateResult {
  /** Undefined when any issue is an error. */
  readonly persona: Persona | undefined;
  /** Errors and warnings, in statement order. */
  readonly issues: readonly PersonaIssue[];
}

export interface PersonaParseResult {
  readonly persona: Persona | undefined;
  /** Every problem from lexing, parsing and validation, ordered by position. */
  readonly issues: readonly PersonaIssue[];
}

/** A value of an unknown key, kept as written (identifiers become strings). */
export type PersonaValue = number | string | readonly PersonaValue[];

/** A validated persona. Immutable: `adjustTrait` returns a new one. */
export interface Persona {
  /** 0 to 1; required. */
  readonly trust: number;
  readonly reactToConflict: ConflictReaction | undefined;
  /** `core_value` entries in order of appearance, without repeats. */
  readonly coreValues: readonly string[];
  /** The other numeric traits; undefined when the persona does not set them (scripts then read the default). */
  readonly traits: Readonly<Record<OptionalNumericTraitKey, number | undefined>>;
  readonly mood: Mood | undefined;
  readonly speechStyle: string | undefined;
  readonly likes: readonly string[];
  readonly dislikes: readonly string[];
  /** `taboo` entries: topics the character refuses to discuss. */
  readonly taboos: readonly string[];
  /**
   * Unknown keys, each with every value written for it in order (so nothing is
   * lost when a newer file is read by an older server). A null-prototype object.
   */
  readonly extra: Readonly<Record<string, readonly PersonaValue[]>>;
}
