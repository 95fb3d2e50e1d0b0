/** Lorebooks (World Info / character_book): parsing, activation, prompt text. See docs/lorebooks.md. */
export { parseCharacterBook, parseLorebook, parseLorebookJson, parseRegexKey, parseWorldInfo } from './parse.js';
export { activate, compareBudgetOrder, comparePromptOrder, formatLore } from './activate.js';
export { compileLorebook } from './matcher.js';
export * from './limits.js';
export type * from './types.js';
