/**
 * Bounds on the work a lorebook can cause. A book may come from an uploaded
 * card and the chat from any user, so both sides are capped: parsing reads at
 * most MAX_LOREBOOK_ENTRIES entries and MAX_KEYS_PER_ENTRY keys per list, and
 * an activation scans at most MAX_SCAN_CHARS characters of chat (and as much
 * again of entry content per recursion pass). Plain keys are matched in one
 * pass over the text (Aho-Corasick), whose cost is at most the text length
 * times MAX_KEY_LENGTH; regex keys are checked by `checkRegex` and run on
 * pieces of at most MAX_SEGMENT_CHARS characters.
 */

export const MAX_LOREBOOK_ENTRIES = 10_000;
/** Per list: primary keys and secondary keys each. */
export const MAX_KEYS_PER_ENTRY = 64;
/** Longest plain key, in UTF-16 code units. Regex keys use safe-regex's MAX_PATTERN_LENGTH. */
export const MAX_KEY_LENGTH = 200;
/** Regex keys per book (each one runs over every scanned piece of text). */
export const MAX_REGEX_KEYS = 256;
/** Largest scan depth honoured (SillyTavern's MAX_SCAN_DEPTH). */
export const MAX_SCAN_DEPTH = 1000;
/** Messages scanned when neither entry, book nor caller sets a depth (SillyTavern's default). */
export const DEFAULT_SCAN_DEPTH = 2;
/** Characters of one message (or one entry's content) scanned; longer text is scanned by its last part. */
export const MAX_SEGMENT_CHARS = 8_000;
/** Characters of chat scanned per activation, newest first; also the cap per recursion pass. */
export const MAX_SCAN_CHARS = 32_000;
/** Recursion passes after the scan of the chat. */
export const MAX_RECURSION_PASSES = 3;
/** Lore tokens when neither the book nor the caller sets a budget. */
export const DEFAULT_BUDGET_TOKENS = 1024;
/** Largest lorebook JSON text `parseLorebookJson` reads. */
export const MAX_LOREBOOK_JSON_CHARS = 32 * 1024 * 1024;
/** Nesting and size bounds when copying unknown fields (`extensions`, extra fields). */
export const MAX_EXTRA_DEPTH = 64;
export const MAX_EXTRA_NODES = 1_000_000;
