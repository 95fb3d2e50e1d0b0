/**
 * Character scripts may carry regular expressions (`on_regex`). JavaScript's
 * backtracking engine can take exponential time on patterns such as `(a+)+$`,
 * and a chat message is attacker-controlled input, so patterns are checked at
 * load time and rejected when they have the shapes that backtrack badly:
 *  - a quantified group that contains an unbounded quantifier or an alternation
 *    (`(a+)+`, `(a|aa)*`),
 *  - back-references (`\1`, `\k<name>`),
 *  - more than MAX_UNBOUNDED unbounded quantifiers in total (polynomial blow-up
 *    such as `.*a.*b.*c.*d`).
 * Together with the message length limit this keeps every match bounded.
 */

export const MAX_UNBOUNDED = 3;
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
        isUnbounded = m[2] !== undefined && (m[3] === '' || Number(m[3]) > 100);
      }
    }
    if (isQuantifier) {
      if (pattern[i + len] === '?') len++; // lazy variant
      if (isUnbounded) {
        unbounded++;
        if (lastGroup && (lastGroup.hasUnbounded || lastGroup.hasAlternation)) {
          return 'a repeated group contains a repetition or an alternation (nested quantifiers backtrack exponentially)';
        }
        top().hasUnbounded = true;
      }
      lastGroup = undefined;
      i += len;
      continue;
    }
    lastGroup = undefined;
    i++;
  }
  if (unbounded > MAX_UNBOUNDED) return `more than ${MAX_UNBOUNDED} unbounded repetitions (*, +, {n,})`;
  return undefined;
}
