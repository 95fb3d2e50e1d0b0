/**
 * Bounds on persona text. A persona is a few lines; these limits are far above
 * what an author writes and exist so that hostile or broken input (a megabyte
 * of "[[[[", a runaway string) costs bounded time and memory and produces a
 * short, readable list of problems.
 */

/** Text read by the lexer, in UTF-16 code units (64 KiB); the rest is ignored and reported. */
export const MAX_PERSONA_LENGTH = 65_536;
/** Longest string value, in characters (code points) after escapes are decoded. */
export const MAX_STRING_LENGTH = 2_000;
/** Deepest list nesting: `[[1]]` is depth 2. */
export const MAX_LIST_DEPTH = 8;
/** Most statements read; the rest is ignored and reported. */
export const MAX_STATEMENTS = 1_000;
/** Most problems reported for one text; one more says that the list was cut. */
export const MAX_ISSUES = 100;
/** Longest trait condition (`trust < 0.3`), in UTF-16 code units. */
export const MAX_CONDITION_LENGTH = 1_000;
