/**
 * Character scripts may carry regular expressions (`on_regex`). JavaScript's
 * backtracking engine can take exponential time on patterns such as `(a+)+$`,
 * and a chat message is attacker-controlled input, so patterns are checked at
 * load time and rejected when they have the shapes that backtrack badly:
 *  - a group repeated without a small bound (`*`, `+`, `{n,m}` with m > 10)
 *    that contains an unbounded quantifier or an alternation (`(a+)+`, `(a|aa)*`, `(\w+\s?){2,100}`),
 *  - back-references (`\1`, `\k<name>`),
 *  - more unbounded quantifiers (`*`, `+`, and `{n,m}` with m > 10 or no m)
 *    than keep the worst case within the square of the message length: each
 *    one multiplies it by the length, and so does a search that is not
 *    anchored with `^` (the engine tries every start position). So an
 *    unanchored pattern may have one (`a+b`), an anchored one two (`^.*a.*b`);
 *    `.*a.*b` takes seconds on a few thousand characters.
 * Together with the message length limit this keeps every match bounded.
 */

/** Unbounded quantifiers allowed in a pattern anchored with `^` (one fewer when not anchored). */
export const MAX_UNBOUNDED = 2;
export const MAX_PATTERN_LENGTH = 500;

interface Frame {
  hasUnbounded: boolean;
  hasAlternation: boolean;
}

/** Returns a reason when the pattern is unsafe or invalid, undefined when it is fine. */
export function checkRegex(pattern: string, flags: string): string | undefined {
  if (pattern.length > MAX_PATTERN_LENGTH) return `pattern is longer than ${MAX_PATTERN_LENGTH} characters`;
  try {
    new RegExp(pattern, flags);
  } catch (err) {
    return (err as Error).message;
  }
  const stack: Frame[] = [{ hasUnbounded: false, hasAlternation: false }];
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
      stack.push({ hasUnbounded: false, hasAlternation: false });
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
    let isUnbounded = false;
    let isQuantifier = false;
    let len = 1;
    if (c === '*' || c === '+') {
      isQuantifier = isUnbounded = true;
    } else if (c === '?') {
      isQuantifier = true;
    } else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(pattern.slice(i));
      if (m) {
        isQuantifier = true;
        len = m[0].length;
        const max = m[2] === undefined ? Number(m[1]) : m[3] === '' ? Infinity : Number(m[3]);
        isUnbounded = max > 10;
      }
    }
    if (isQuantifier) {
      if (pattern[i + len] === '?') len++; // lazy variant
      if (isUnbounded && lastGroup && (lastGroup.hasUnbounded || lastGroup.hasAlternation)) {
        return 'a repeated group contains a repetition or an alternation (nested quantifiers backtrack exponentially)';
      }
      if (isUnbounded) {
        unbounded++;
        top().hasUnbounded = true;
      }
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
