/**
 * Key matching for lorebooks. All plain keys of a book are matched in one
 * pass over each piece of text with an Aho-Corasick automaton (one for
 * case-insensitive keys, run over the lower-cased text, one for case-sensitive
 * keys), so the cost of a scan grows with the text, not with the number of
 * entries: at most text length × MAX_KEY_LENGTH steps. Regex keys, checked by
 * `checkRegex` and capped in number, are tested on each piece in a helper
 * thread under a deadline (see text/regex-guard.ts).
 *
 * A scan records, for every distinct key, the smallest depth at which it was
 * found (0 = newest message, 1 = the one before, ...; -1 = entry content read
 * during recursion), once as a substring and once as a whole word. An entry
 * with scan depth d then sees a key when its recorded depth is below d.
 */
import { checkRegex } from '../characters/safe-regex.js';
import { type GuardedRegex, regexGuard } from '../text/regex-guard.js';
import { MAX_KEY_LENGTH, MAX_KEYS_PER_ENTRY, MAX_LOREBOOK_ENTRIES, MAX_REGEX_KEYS } from './limits.js';
import type { LoreKey, Lorebook, LorebookEntry } from './types.js';

/** Depth recorded for text added by recursion: visible to every entry. */
export const RECURSION_DEPTH = -1;
const NOT_FOUND = 0x7fffffff;

const WORD_RE = /^[\p{L}\p{N}\p{M}_]$/u;
const CJK_RE = /^[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]$/u;

/**
 * A letter, digit, mark or underscore that is not CJK. CJK text has no spaces
 * between words, so a CJK neighbour never joins a key into a longer word.
 */
function isWordChar(cp: number | undefined): boolean {
  if (cp === undefined) return false;
  if (cp < 0x80) return (cp >= 0x30 && cp <= 0x39) || (cp >= 0x41 && cp <= 0x5a) || (cp >= 0x61 && cp <= 0x7a) || cp === 0x5f;
  const ch = String.fromCodePoint(cp);
  return WORD_RE.test(ch) && !CJK_RE.test(ch);
}

function codePointBefore(text: string, i: number): number | undefined {
  if (i <= 0) return undefined;
  const lo = text.charCodeAt(i - 1);
  if (lo >= 0xdc00 && lo <= 0xdfff && i >= 2) {
    const hi = text.charCodeAt(i - 2);
    if (hi >= 0xd800 && hi <= 0xdbff) return (hi - 0xd800) * 0x400 + (lo - 0xdc00) + 0x10000;
  }
  return lo;
}

/** A reference from an entry's key to the slot that records it. */
export interface KeyRef {
  readonly slot: number;
  readonly regex: boolean;
  readonly source: string;
}

export interface CompiledEntry {
  readonly entry: LorebookEntry;
  readonly keys: readonly KeyRef[];
  readonly secondaryKeys: readonly KeyRef[];
}

/** Aho-Corasick automaton over UTF-16 code units. */
class Automaton {
  private readonly next: Map<number, number>[] = [new Map()];
  private readonly fail: number[] = [0];
  /** Slot of the key ending at the node, or -1. */
  private readonly out: number[] = [-1];
  /** Nearest node on the fail chain (excluding itself) where a key ends, or 0. */
  private readonly dict: number[] = [0];
  private readonly depthOf: number[] = [0];
  /** Slot of each key (needle) added. */
  readonly slots = new Map<string, number>();
  private built = false;

  add(needle: string, slot: number): void {
    let node = 0;
    for (let i = 0; i < needle.length; i++) {
      const c = needle.charCodeAt(i);
      let n = this.next[node]!.get(c);
      if (n === undefined) {
        n = this.next.length;
        this.next.push(new Map());
        this.fail.push(0);
        this.out.push(-1);
        this.dict.push(0);
        this.depthOf.push(this.depthOf[node]! + 1);
        this.next[node]!.set(c, n);
      }
      node = n;
    }
    this.out[node] = slot;
    this.slots.set(needle, slot);
  }

  build(): void {
    const queue: number[] = [];
    for (const n of this.next[0]!.values()) queue.push(n);
    for (let qi = 0; qi < queue.length; qi++) {
      const node = queue[qi]!;
      for (const [c, child] of this.next[node]!) {
        let f = this.fail[node]!;
        while (f !== 0 && !this.next[f]!.has(c)) f = this.fail[f]!;
        const target = this.next[f]!.get(c);
        this.fail[child] = target !== undefined && target !== child ? target : 0;
        const fc = this.fail[child]!;
        this.dict[child] = this.out[fc]! >= 0 ? fc : this.dict[fc]!;
        queue.push(child);
      }
    }
    this.built = true;
  }

  get empty(): boolean {
    return this.next.length === 1;
  }

  /** Calls `found(slot, start, end)` for every occurrence of every key in `text`. */
  scan(text: string, found: (slot: number, start: number, end: number) => void): void {
    if (!this.built) this.build();
    let node = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      let n = this.next[node]!.get(c);
      while (n === undefined && node !== 0) {
        node = this.fail[node]!;
        n = this.next[node]!.get(c);
      }
      node = n ?? 0;
      for (let m = this.out[node]! >= 0 ? node : this.dict[node]!; m !== 0; m = this.dict[m]!) {
        found(this.out[m]!, i + 1 - this.depthOf[m]!, i + 1);
      }
    }
  }
}

export class CompiledLorebook {
  readonly entries: readonly CompiledEntry[];
  readonly slotCount: number;
  private readonly folded = new Automaton();
  private readonly exact = new Automaton();
  /** Per slot (plain keys only): check a word boundary before / after the key. */
  private readonly edgeLeft: boolean[] = [];
  private readonly edgeRight: boolean[] = [];
  private readonly regexes: { slot: number; re: GuardedRegex }[] = [];

  constructor(book: Lorebook) {
    let slots = 0;
    const regexSlots = new Map<string, number>();
    const ref = (key: LoreKey, caseSensitive: boolean): KeyRef | undefined => {
      if (key.kind === 'regex') {
        const id = `${key.flags}/${key.pattern}`;
        let slot = regexSlots.get(id);
        if (slot === undefined) {
          // Parsed books were checked already; a book built another way is checked here.
          if (regexSlots.size >= MAX_REGEX_KEYS || checkRegex(key.pattern, key.flags) !== undefined || /[gy]/.test(key.flags)) return undefined;
          slot = slots++;
          regexSlots.set(id, slot);
          this.regexes.push({ slot, re: { source: key.pattern, flags: key.flags } });
          this.edgeLeft.push(false);
          this.edgeRight.push(false);
        }
        return { slot, regex: true, source: key.source };
      }
      if (key.source.length === 0 || key.source.length > MAX_KEY_LENGTH) return undefined;
      const auto = caseSensitive ? this.exact : this.folded;
      const needle = caseSensitive ? key.source : key.source.toLowerCase();
      let slot = auto.slots.get(needle);
      if (slot === undefined) {
        slot = slots++;
        auto.add(needle, slot);
        const first = needle.codePointAt(0);
        const last = codePointBefore(needle, needle.length);
        this.edgeLeft.push(isWordChar(first));
        this.edgeRight.push(isWordChar(last));
      }
      return { slot, regex: false, source: key.source };
    };
    const refs = (keys: readonly LoreKey[], cs: boolean): KeyRef[] =>
      keys.slice(0, MAX_KEYS_PER_ENTRY).flatMap((k) => {
        const r = ref(k, cs);
        return r ? [r] : [];
      });
    this.entries = book.entries.slice(0, MAX_LOREBOOK_ENTRIES).map((entry) => ({
      entry,
      keys: refs(entry.keys, entry.caseSensitive),
      secondaryKeys: refs(entry.secondaryKeys, entry.caseSensitive),
    }));
    this.slotCount = slots;
    this.folded.build();
    this.exact.build();
  }

  newState(): ScanState {
    return new ScanState(this.slotCount);
  }

  /** Records every key found in `text` at `depth` (see the file comment). */
  scan(state: ScanState, text: string, depth: number): void {
    const { any, whole } = state;
    const record = (haystack: string) => (slot: number, start: number, end: number) => {
      if (any[slot]! > depth) any[slot] = depth;
      if (whole[slot]! > depth) {
        const leftOk = !this.edgeLeft[slot] || !isWordChar(codePointBefore(haystack, start));
        const rightOk = !this.edgeRight[slot] || !isWordChar(haystack.codePointAt(end));
        if (leftOk && rightOk) whole[slot] = depth;
      }
    };
    if (!this.folded.empty) {
      const lower = text.toLowerCase();
      this.folded.scan(lower, record(lower));
    }
    if (!this.exact.empty) this.exact.scan(text, record(text));
    // Regex keys not found yet at this depth, all tested in one job under the guard's deadline.
    const open = this.regexes.filter(({ slot }) => any[slot]! > depth);
    if (open.length > 0) {
      const hits = regexGuard().test(open.map((r) => r.re), text);
      open.forEach(({ slot }, i) => {
        if (hits[i]) any[slot] = depth;
      });
    }
  }
}

/** What one activation has found so far. */
export class ScanState {
  /** Per slot: smallest depth where the key was found (as a substring / for regex keys). */
  readonly any: Int32Array;
  /** Per slot: smallest depth where the plain key was found as a whole word. */
  readonly whole: Int32Array;
  constructor(slots: number) {
    this.any = new Int32Array(slots).fill(NOT_FOUND);
    this.whole = new Int32Array(slots).fill(NOT_FOUND);
  }

  /** Whether the key is seen by an entry scanning `scanDepth` messages. */
  sees(ref: KeyRef, scanDepth: number, wholeWords: boolean): boolean {
    const found = ref.regex || !wholeWords ? this.any[ref.slot]! : this.whole[ref.slot]!;
    return found < scanDepth;
  }
}

const cache = new WeakMap<Lorebook, CompiledLorebook>();

/** The compiled form of a book, built once per book object. */
export function compileLorebook(book: Lorebook): CompiledLorebook {
  let c = cache.get(book);
  if (!c) {
    c = new CompiledLorebook(book);
    cache.set(book, c);
  }
  return c;
}
