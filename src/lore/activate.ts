/**
 * Activation: which lorebook entries go into the prompt for the current
 * chat, within a token budget, in an order that does not change while the
 * conversation does not (so that upstream prompt caches keep hitting).
 * The rules are SillyTavern's World Info rules (public/scripts/world-info.js,
 * `checkWorldInfo`), simplified where noted in docs/lorebooks.md.
 */
import { countTokens } from '../text/tokens.js';
import {
  DEFAULT_BUDGET_TOKENS,
  DEFAULT_SCAN_DEPTH,
  MAX_RECURSION_PASSES,
  MAX_SCAN_CHARS,
  MAX_SCAN_DEPTH,
  MAX_SEGMENT_CHARS,
} from './limits.js';
import { compileLorebook, RECURSION_DEPTH, type CompiledEntry, type ScanState } from './matcher.js';
import type { ActivatedEntry, ActivateOptions, ActivationResult, Lorebook, LorebookEntry, SkippedEntry } from './types.js';

function checkOptions(o: ActivateOptions): void {
  if (typeof o !== 'object' || o === null) throw new TypeError('options must be an object');
  if (!Array.isArray(o.messages) || !o.messages.every((m) => typeof m === 'string')) {
    throw new TypeError('options.messages must be an array of strings');
  }
  const nonNegInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0;
  if (o.budgetTokens !== undefined && !nonNegInt(o.budgetTokens)) throw new TypeError('options.budgetTokens must be a non-negative integer');
  if (o.scanDepth !== undefined && !nonNegInt(o.scanDepth)) throw new TypeError('options.scanDepth must be a non-negative integer');
  if (o.recursive !== undefined && typeof o.recursive !== 'boolean') throw new TypeError('options.recursive must be a boolean');
  if (o.matchWholeWords !== undefined && typeof o.matchWholeWords !== 'boolean') throw new TypeError('options.matchWholeWords must be a boolean');
  if (o.random !== undefined && typeof o.random !== 'function') throw new TypeError('options.random must be a function');
  if (o.render !== undefined && typeof o.render !== 'function') throw new TypeError('options.render must be a function');
}

function compareIds(a: number | string, b: number | string): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'number') return -1;
  if (typeof b === 'number') return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Prompt order: insertion order ascending (lower = earlier in the text), then id, then position in the book. */
export function comparePromptOrder(a: LorebookEntry, b: LorebookEntry): number {
  return a.order - b.order || compareIds(a.id, b.id) || a.index - b.index;
}

/**
 * Budget order (who gets tokens first): constant entries, then higher
 * priority (the card's `priority`, else the insertion order, as SillyTavern
 * ranks by order), then higher insertion order, then id, then position.
 */
export function compareBudgetOrder(a: LorebookEntry, b: LorebookEntry): number {
  return (
    Number(b.constant) - Number(a.constant) ||
    (b.priority ?? b.order) - (a.priority ?? a.order) ||
    b.order - a.order ||
    compareIds(a.id, b.id) ||
    a.index - b.index
  );
}

/** Cuts a text to what is scanned of it (its first MAX_SEGMENT_CHARS characters, and what `room` leaves). */
function segment(text: string, room: number): string {
  const n = Math.min(MAX_SEGMENT_CHARS, room);
  return text.length > n ? text.slice(0, n) : text;
}

interface Candidate {
  readonly at: number;
  readonly entry: LorebookEntry;
  readonly trigger: 'constant' | 'key';
  readonly matchedKey: string | undefined;
}

function evaluate(c: CompiledEntry, state: ScanState, depth: number, wholeWords: boolean): string | undefined {
  let primary: string | undefined;
  for (const k of c.keys) {
    if (state.sees(k, depth, wholeWords)) {
      primary = k.source;
      break;
    }
  }
  if (primary === undefined) return undefined;
  const { entry } = c;
  // As in SillyTavern, secondary keys count only for a selective entry that has some.
  if (!entry.selective || c.secondaryKeys.length === 0) return primary;
  let n = 0;
  for (const k of c.secondaryKeys) if (state.sees(k, depth, wholeWords)) n++;
  const all = c.secondaryKeys.length;
  switch (entry.selectiveLogic) {
    case 'and_any':
      return n > 0 ? primary : undefined;
    case 'not_all':
      return n < all ? primary : undefined;
    case 'not_any':
      return n === 0 ? primary : undefined;
    case 'and_all':
      return n === all ? primary : undefined;
  }
}

/**
 * The entries of `book` that the chat activates, within the token budget.
 * Pure: the same book, messages and options give the same result (unless
 * `random` is passed for probabilities).
 */
export function activate(book: Lorebook, options: ActivateOptions): ActivationResult {
  checkOptions(options);
  const compiled = compileLorebook(book);
  const defaultDepth = Math.min(book.scanDepth ?? options.scanDepth ?? DEFAULT_SCAN_DEPTH, MAX_SCAN_DEPTH);
  const wholeDefault = options.matchWholeWords ?? false;
  const recursive = book.recursiveScanning ?? options.recursive ?? false;
  const limits = [book.tokenBudget, options.budgetTokens].filter((b): b is number => b !== undefined);
  const budget = limits.length ? Math.min(...limits) : DEFAULT_BUDGET_TOKENS;
  const depthOf = (e: LorebookEntry) => Math.min(e.scanDepth ?? defaultDepth, MAX_SCAN_DEPTH);

  // Scan the chat, newest message first, as deep as the deepest entry looks.
  const state = compiled.newState();
  let deepest = 0;
  for (const c of compiled.entries) {
    if (c.entry.enabled && !c.entry.constant && c.keys.length > 0) deepest = Math.max(deepest, depthOf(c.entry));
  }
  const { messages } = options;
  let room = MAX_SCAN_CHARS;
  for (let d = 0; d < deepest && d < messages.length && room > 0; d++) {
    const text = segment(messages[messages.length - 1 - d]!, room);
    room -= text.length;
    compiled.scan(state, text, d);
  }

  // By position in the compiled book (a hand-built book may repeat `index`).
  const done = new Uint8Array(compiled.entries.length);
  const included: ActivatedEntry[] = [];
  const skipped: SkippedEntry[] = [];
  let used = 0;
  let overflow = false;
  let pass = 0;
  for (;;) {
    const candidates: Candidate[] = [];
    compiled.entries.forEach((c, at) => {
      const { entry } = c;
      if (!entry.enabled || done[at]) return;
      if (entry.constant) {
        if (pass === 0) candidates.push({ at, entry, trigger: 'constant', matchedKey: undefined });
        return;
      }
      if (pass > 0 && entry.excludeRecursion) return;
      const key = evaluate(c, state, depthOf(entry), entry.matchWholeWords ?? wholeDefault);
      if (key !== undefined) candidates.push({ at, entry, trigger: 'key', matchedKey: key });
    });
    candidates.sort((a, b) => compareBudgetOrder(a.entry, b.entry));

    const feed: string[] = [];
    for (const { at, entry, trigger, matchedKey } of candidates) {
      done[at] = 1;
      if (entry.useProbability && options.random && entry.probability !== undefined && entry.probability < 100) {
        if (!(options.random() * 100 < entry.probability)) {
          skipped.push({ entry, reason: 'probability', tokens: 0 });
          continue;
        }
      }
      const content = options.render ? options.render(entry.content, entry) : entry.content;
      if (content.trim() === '') {
        skipped.push({ entry, reason: 'empty_content', tokens: 0 });
        continue;
      }
      const tokens = countTokens(content);
      // The first entry that does not fit closes the budget, so a lower-ranked
      // entry never takes the place of a higher-ranked one (SillyTavern does the same).
      if (overflow || used + tokens > budget) {
        overflow = true;
        skipped.push({ entry, reason: 'budget', tokens });
        continue;
      }
      used += tokens;
      included.push({ entry, content, tokens, trigger, matchedKey, pass });
      if (!entry.preventRecursion) feed.push(content);
    }
    pass++;
    if (!recursive || overflow || feed.length === 0 || pass > MAX_RECURSION_PASSES) break;
    let recursionRoom = MAX_SCAN_CHARS;
    for (const text of feed) {
      if (recursionRoom <= 0) break;
      const s = segment(text, recursionRoom);
      recursionRoom -= s.length;
      compiled.scan(state, s, RECURSION_DEPTH);
    }
  }

  included.sort((a, b) => comparePromptOrder(a.entry, b.entry));
  skipped.sort((a, b) => comparePromptOrder(a.entry, b.entry));
  return { entries: included, tokens: used, skipped, budget, passes: pass };
}

/**
 * The lore text for the prompt: the entries' content in prompt order, one
 * after the other, separated by a newline. Positions are not applied: filter
 * by `entry.position` first to build several blocks.
 */
export function formatLore(entries: readonly ActivatedEntry[]): string {
  return [...entries]
    .sort((a, b) => comparePromptOrder(a.entry, b.entry))
    .map((a) => a.content)
    .join('\n');
}
