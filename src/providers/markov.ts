/**
 * The embedded script model: an order-2 Markov chain over a character's own
 * lines (greeting and examples). It is not a language model: it recombines what
 * the character has said, starting from the line that shares the most (rare)
 * words with the user's message, so replies stay in voice and loosely on topic.
 */
import { isSentenceEnd, tokenize } from '../text/tokens.js';
import { pick, type Rng } from '../text/random.js';

const BOS = '\u0002';
const EOS = '\u0003';
const SEP = '\u0001';
const MIN_TOKENS = 6;
const MAX_SENTENCES = 3;

function isContent(token: string): boolean {
  return /[\p{L}\p{N}]/u.test(token);
}

export class MarkovModel {
  private readonly next = new Map<string, string[]>();
  private readonly lines: string[][];
  private readonly lineSets: Set<string>[];
  private readonly idf = new Map<string, number>();

  constructor(corpus: readonly string[]) {
    this.lines = corpus.map(tokenize).filter((t) => t.length > 0);
    this.lineSets = this.lines.map((t) => new Set(t.filter(isContent).map((x) => x.toLowerCase())));
    const df = new Map<string, number>();
    for (const set of this.lineSets) for (const tok of set) df.set(tok, (df.get(tok) ?? 0) + 1);
    for (const [tok, n] of df) this.idf.set(tok, Math.log(1 + this.lines.length / n));
    for (const line of this.lines) {
      const seq = [BOS, BOS, ...line, EOS];
      for (let i = 2; i < seq.length; i++) {
        const key = seq[i - 2] + SEP + seq[i - 1];
        let list = this.next.get(key);
        if (!list) this.next.set(key, (list = []));
        list.push(seq[i]!);
      }
    }
  }

  get size(): number {
    return this.lines.length;
  }

  /** Lines ranked by shared rare words with the prompt, best first (ties keep corpus order). */
  private ranked(prompt: string): number[] {
    const words = new Set(tokenize(prompt).filter(isContent).map((t) => t.toLowerCase()));
    const scores = this.lineSets.map((set, i) => {
      let s = 0;
      for (const w of words) if (set.has(w)) s += this.idf.get(w) ?? 0;
      return { i, s };
    });
    return scores.sort((a, b) => b.s - a.s || a.i - b.i).filter((x) => x.s > 0).map((x) => x.i);
  }

  private startLine(candidates: number[], used: Set<number>, rng: Rng): number {
    const fresh = candidates.filter((i) => !used.has(i)).slice(0, 3);
    if (fresh.length > 0) return pick(fresh, rng);
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
      let a = BOS;
      let b = line[0]!;
      out.push(b);
      if (out.length >= maxTokens) return { tokens: out, length: true };
      for (;;) {
        const options = this.next.get(a + SEP + b);
        const tok = options ? pick(options, rng) : EOS;
        if (tok === EOS) break;
        out.push(tok);
        if (out.length >= maxTokens) return { tokens: out, length: !isSentenceEnd(tok) };
        a = b;
        b = tok;
      }
      if (out.length >= MIN_TOKENS) break;
    }
    return { tokens: out, length: false };
  }
}
