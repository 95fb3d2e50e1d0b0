/**
 * Character scripts may carry regular expressions (`on_regex`). JavaScript's
 * backtracking engine can take exponential time on patterns such as `(a+)+$`,
 * and a chat message is attacker-controlled input, so patterns are checked at
 * load time and rejected when they have the shapes that backtrack badly:
 *  - a group repeated without a small bound (`*`, `+`, `{n,m}` with m > 10)
 *    that contains a quantifier of variable count or an alternation
 *    (`(a+)+`, `(a{1,5})+`, `(a?a)*`, `(a|aa)*`, `(\w+\s?){2,100}`): the
 *    ways to split a run of input between its repetitions grow exponentially;
 *  - a group repeated a variable number of times, even a small one, that
 *    contains a repetition of variable count (`(a+){1,10}`, `(a{1,5}){2,8}`):
 *    the splits grow as a power of the input's length;
 *  - back-references (`\1`, `\k<name>`),
 *  - more unbounded quantifiers (`*`, `+`, and `{n,m}` with m > 10 or no m)
 *    than keep the worst case within the square of the message length: each
 *    one multiplies it by the length, and so does a search that is not
 *    anchored with `^` (the engine tries every start position). So an
 *    unanchored pattern may have one (`a+b`), an anchored one two (`^.*a.*b`);
 *    `.*a.*b` takes seconds on a few thousand characters.
 * These shapes are refused at load; others still backtrack badly (a chain
 * of bounded ambiguous groups such as `(?:a|a){10}(?:a|a){10}`), so at run
 * time patterns are tested under a deadline (text/regex-guard.ts).
 */

/** Unbounded quantifiers allowed in a pattern anchored with `^` (one fewer when not anchored). */
export const MAX_UNBOUNDED = 2;
export const MAX_PATTERN_LENGTH = 500;

interface Frame {
  hasUnbounded: boolean;
  hasAlternation: boolean;
  /** A quantifier whose count varies (`?`, `*`, `+`, `{n,m}` with m > n). */
  hasVariable: boolean;
  /** A quantifier whose count varies and may exceed 1 (`*`, `+`, `{n,m}` with m > n and m > 1). */
  hasRepeat: boolean;
}

const frame = (): Frame => ({ hasUnbounded: false, hasAlternation: false, hasVariable: false, hasRepeat: false });

/** Returns a reason when the pattern is unsafe or invalid, undefined when it is fine. */
export function checkRegex(pattern: string, flags: string): string | undefined {
  if (pattern.length > MAX_PATTERN_LENGTH) return `pattern is longer than ${MAX_PATTERN_LENGTH} characters`;
  try {
    new RegExp(pattern, flags);
  } catch (err) {
    return (err as Error).message;
  }
  const stack: Frame[] = [frame()];
  let unbounded = 0;
  // What the next quantifier applies to: a closed group's frame, or an atom.
  let lastGroup: Frame | undefined;
  let i = 0;
  const top = () => stack[stack.length - 1]!;
  while (i < pattern.length) {
    const c = pattern[i]!;
    if (c === '\\') {
      const n = pattern[i + 1] ?? '';
      if (/[1-9]/.test(n) || (n === 'k' && pattern[i + 2] === '<')) return 'back-references are not allowed';
      i += n === 'u' && pattern[i + 2] === '{' ? pattern.indexOf('}', i) + 1 || pattern.length : 2;
      lastGroup = undefined;
      continue;
    }
    if (c === '[') {
      // Skip a character class, honouring escapes and a leading ']'.
      let j = i + 1;
      if (pattern[j] === '^') j++;
      if (pattern[j] === ']') j++;
      while (j < pattern.length && pattern[j] !== ']') j += pattern[j] === '\\' ? 2 : 1;
      i = j + 1;
      lastGroup = undefined;
      continue;
    }
    if (c === '(') {
      stack.push(frame());
      i++;
      if (pattern[i] === '?') {
        // (?: (?= (?! (?<= (?<! (?<name>
        i++;
        if (pattern[i] === '<' && pattern[i + 1] !== '=' && pattern[i + 1] !== '!') {
          i = pattern.indexOf('>', i) + 1;
        } else i += pattern[i] === '<' ? 2 : 1;
      }
      lastGroup = undefined;
      continue;
    }
    if (c === ')') {
      const closed = stack.pop()!;
      const parent = top();
      parent.hasUnbounded ||= closed.hasUnbounded;
      parent.hasVariable ||= closed.hasVariable;
      parent.hasRepeat ||= closed.hasRepeat;
      lastGroup = closed;
      i++;
      continue;
    }
    if (c === '|') {
      top().hasAlternation = true;
      lastGroup = undefined;
      i++;
      continue;
    }
    let isQuantifier = false;
    let min = 0;
    let max = 0;
    let len = 1;
    if (c === '*' || c === '+') {
      isQuantifier = true;
      min = c === '*' ? 0 : 1;
      max = Infinity;
    } else if (c === '?') {
      isQuantifier = true;
      max = 1;
    } else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(pattern.slice(i));
      if (m) {
        isQuantifier = true;
        len = m[0].length;
        min = Number(m[1]);
        max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      }
    }
    if (isQuantifier) {
      if (pattern[i + len] === '?') len++; // lazy variant
      const isUnbounded = max > 10;
      const isVariable = max > min;
      const isRepeat = isVariable && max > 1;
      if (isUnbounded && lastGroup && (lastGroup.hasVariable || lastGroup.hasAlternation)) {
        return 'a repeated group contains a repetition or an alternation (nested quantifiers backtrack exponentially)';
      }
      if (isRepeat && lastGroup?.hasRepeat) {
        return 'a group repeated a variable number of times contains a repetition of variable count (nested quantifiers backtrack polynomially or worse)';
      }
      if (isUnbounded) {
        unbounded++;
        top().hasUnbounded = true;
      }
      if (isVariable) top().hasVariable = true;
      if (isRepeat) top().hasRepeat = true;
      lastGroup = undefined;
      i += len;
      continue;
    }
    lastGroup = undefined;
    i++;
  }
  const anchored = pattern.startsWith('^') && !stack[0]!.hasAlternation;
  const allowed = anchored ? MAX_UNBOUNDED : MAX_UNBOUNDED - 1;
  if (unbounded > allowed) {
    return `${unbounded} unbounded repetitions (*, +, {n,} or {n,m} with m > 10) can take time growing faster than the square of the message length; use at most ${MAX_UNBOUNDED - 1}, or ${MAX_UNBOUNDED} in a pattern anchored with ^`;
  }
  return undefined;
}
