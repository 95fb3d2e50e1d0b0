/**
 * The embedded script model: a Markov chain (order 4 by default) over a
 * character's own lines (greeting and examples). It is not a language model:
 * it starts from one of the lines that share the most rare words with the
 * user's message (the better the match, the likelier) and follows the chain
 * from there, so replies stay in voice and loosely on topic, and vary
 * where the character's lines share a phrase.
 */
import { isSentenceEnd, tokenize } from '../text/tokens.js';
import { pick, type Rng } from '../text/random.js';

const BOS = '\u0002';
const EOS = '\u0003';
const SEP = '\u0001';
const MIN_TOKENS = 6;
const MAX_SENTENCES = 3;
/** How many of the best-matching lines a reply may start from. */
const CANDIDATES = 3;

function isContent(token: string): boolean {
  return /[\p{L}\p{N}]/u.test(token);
}

export class MarkovModel {
  private readonly next = new Map<string, string[]>();
  private readonly lines: string[][];
  private readonly lineSets: Set<string>[];
  private readonly idf = new Map<string, number>();

  constructor(
    corpus: readonly string[],
    private readonly order = 4,
  ) {
    this.lines = corpus.map(tokenize).filter((t) => t.length > 0);
    this.lineSets = this.lines.map((t) => new Set(t.filter(isContent).map((x) => x.toLowerCase())));
    const df = new Map<string, number>();
    for (const set of this.lineSets) for (const tok of set) df.set(tok, (df.get(tok) ?? 0) + 1);
    for (const [tok, n] of df) this.idf.set(tok, Math.log(1 + this.lines.length / n));
    for (const line of this.lines) {
      const seq = [...new Array<string>(order).fill(BOS), ...line, EOS];
      for (let i = order; i < seq.length; i++) {
        const key = seq.slice(i - order, i).join(SEP);
        let list = this.next.get(key);
        if (!list) this.next.set(key, (list = []));
        list.push(seq[i]!);
      }
    }
  }

  get size(): number {
    return this.lines.length;
  }

  /** Lines sharing words with the prompt, best first (ties keep corpus order), with their scores. */
  ranked(prompt: string): { i: number; s: number }[] {
    const words = new Set(tokenize(prompt).filter(isContent).map((t) => t.toLowerCase()));
    const scores = this.lineSets.map((set, i) => {
      let s = 0;
      for (const w of words) if (set.has(w)) s += this.idf.get(w) ?? 0;
      return { i, s };
    });
    return scores.sort((a, b) => b.s - a.s || a.i - b.i).filter((x) => x.s > 0);
  }

  /**
   * A start line among the best unused matches, chosen with probability ∝ score³
   * (a clearly better match almost always wins; close ones share); any unused
   * line when none match.
   */
  private startLine(candidates: { i: number; s: number }[], used: Set<number>, rng: Rng): number {
    const fresh = candidates.filter((c) => !used.has(c.i)).slice(0, CANDIDATES);
    if (fresh.length > 0) {
      const weight = (c: { s: number }) => c.s ** 3;
      const total = fresh.reduce((sum, c) => sum + weight(c), 0);
      let r = rng() * total;
      for (const c of fresh) if ((r -= weight(c)) < 0) return c.i;
      return fresh[0]!.i;
    }
    const all = this.lines.map((_, i) => i).filter((i) => !used.has(i));
    return pick(all.length > 0 ? all : this.lines.map((_, i) => i), rng);
  }

  /** Generates up to maxTokens tokens; `length` is true when the budget cut the reply. */
  generate(prompt: string, rng: Rng, maxTokens: number): { tokens: string[]; length: boolean } {
    if (this.lines.length === 0 || maxTokens <= 0) return { tokens: [], length: false };
    const candidates = this.ranked(prompt);
    const used = new Set<number>();
    const out: string[] = [];
    for (let sentence = 0; sentence < MAX_SENTENCES; sentence++) {
      const lineIndex = this.startLine(candidates, used, rng);
      used.add(lineIndex);
      const line = this.lines[lineIndex]!;
      // Start with the line's first `order` tokens, so the chain continues
      // this line (and branches only where another line shares a phrase).
      const head = line.slice(0, this.order);
      const context = [...new Array<string>(this.order - head.length).fill(BOS), ...head];
      for (const tok of head) {
        out.push(tok);
        if (out.length >= maxTokens) return { tokens: out, length: true };
      }
      if (head.length < this.order) continue; // a line this short is complete
      for (;;) {
        const options = this.next.get(context.join(SEP));
        const tok = options ? pick(options, rng) : EOS;
        if (tok === EOS) break;
        out.push(tok);
        if (out.length >= maxTokens) return { tokens: out, length: !isSentenceEnd(tok) };
        context.shift();
        context.push(tok);
      }
      if (out.length >= MIN_TOKENS) break;
    }
    return { tokens: out, length: false };
  }
}
