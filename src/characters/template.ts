/**
 * Reply templates in the seed's Go-template style: `{{.UserInput | trimSpace}}`,
 * string literals, pipes into a fixed set of functions, `{{- -}}` trimming, and
 * the Character Card macros `{{char}}` / `{{user}}`. Templates are data: they
 * are parsed once into parts, and rendering only looks up fields and calls the
 * functions below. Nothing in a template can reach code or the process.
 */

export const TEMPLATE_FIELDS = ['UserInput', 'CharacterName', 'UserName', 'State', 'PreviousState', 'Turn'] as const;
export type TemplateField = (typeof TEMPLATE_FIELDS)[number];
export type TemplateContext = Readonly<Record<TemplateField, string>>;

type Literal = string | number;
interface FnSpec {
  readonly args: readonly ('string' | 'int')[];
  readonly apply: (input: string, args: readonly Literal[]) => string;
}

/** The functions a pipe may call; documented in docs/characters.md. */
export const TEMPLATE_FUNCTIONS: Readonly<Record<string, FnSpec>> = {
  trimSpace: { args: [], apply: (s) => s.trim() },
  upper: { args: [], apply: (s) => s.toUpperCase() },
  lower: { args: [], apply: (s) => s.toLowerCase() },
  title: { args: [], apply: (s) => s.replace(/(^|\s)(\p{Ll})/gu, (_m, sp: string, c: string) => sp + c.toUpperCase()) },
  truncate: {
    args: ['int'],
    apply: (s, [n]) => {
      const chars = Array.from(s);
      return chars.length <= (n as number) ? s : chars.slice(0, n as number).join('');
    },
  },
  default: { args: ['string'], apply: (s, [d]) => (s.trim() === '' ? String(d) : s) },
  replace: { args: ['string', 'string'], apply: (s, [from, to]) => (from === '' ? s : s.split(String(from)).join(String(to))) },
};

type Operand = { kind: 'field'; name: TemplateField } | { kind: 'literal'; value: string };
interface Call {
  fn: FnSpec;
  args: Literal[];
}
type Part = string | { operand: Operand; calls: Call[] };

export class TemplateError extends Error {
  constructor(
    message: string,
    /** 1-based line and column inside the template text. */
    readonly line: number,
    readonly column: number,
    /** 0-based offset inside the template text. */
    readonly offset: number,
  ) {
    super(message);
    this.name = 'TemplateError';
  }
}

export interface Template {
  readonly source: string;
  /** Fields the template reads, for validation and docs. */
  readonly fields: readonly TemplateField[];
  render(ctx: TemplateContext): string;
}

function position(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

interface Token {
  kind: 'field' | 'string' | 'number' | 'ident' | 'pipe';
  text: string;
  value?: Literal;
  offset: number;
}

function lexAction(src: string, start: number, end: number, fail: (msg: string, at: number) => never): Token[] {
  const tokens: Token[] = [];
  let i = start;
  while (i < end) {
    const c = src[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
    } else if (c === '|') {
      tokens.push({ kind: 'pipe', text: '|', offset: i });
      i++;
    } else if (c === '"') {
      let j = i + 1;
      let out = '';
      while (j < end && src[j] !== '"') {
        if (src[j] === '\\' && j + 1 < end) {
          const e = src[j + 1]!;
          out += e === 'n' ? '\n' : e === 't' ? '\t' : e;
          j += 2;
        } else out += src[j++];
      }
      if (j >= end) fail('unterminated string literal', i);
      tokens.push({ kind: 'string', text: src.slice(i, j + 1), value: out, offset: i });
      i = j + 1;
    } else if (c === '.' || /[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < end && /[A-Za-z0-9_]/.test(src[j]!)) j++;
      const text = src.slice(i, j);
      tokens.push({ kind: c === '.' ? 'field' : 'ident', text, offset: i });
      i = j;
    } else if (/[-0-9]/.test(c)) {
      let j = i + 1;
      while (j < end && /[0-9]/.test(src[j]!)) j++;
      const text = src.slice(i, j);
      if (!/^-?\d+$/.test(text)) fail(`unexpected ${JSON.stringify(text)}`, i);
      tokens.push({ kind: 'number', text, value: Number(text), offset: i });
      i = j;
    } else {
      fail(`unexpected character ${JSON.stringify(c)}`, i);
    }
  }
  return tokens;
}

const MACROS: ReadonlyMap<string, TemplateField> = new Map([
  ['char', 'CharacterName'],
  ['user', 'UserName'],
]);

/** Parses a template; throws TemplateError with the position of the first problem. */
export function compileTemplate(source: string): Template {
  const fail: (msg: string, at: number) => never = (msg, at) => {
    const { line, column } = position(source, at);
    throw new TemplateError(msg, line, column, at);
  };
  const parts: Part[] = [];
  const fields = new Set<TemplateField>();
  let i = 0;
  let trimNextText = false;
  while (i < source.length) {
    const open = source.indexOf('{{', i);
    let text = source.slice(i, open === -1 ? source.length : open);
    if (trimNextText) text = text.replace(/^\s+/, '');
    trimNextText = false;
    if (open === -1) {
      if (text) parts.push(text);
      break;
    }
    const close = source.indexOf('}}', open + 2);
    if (close === -1) fail('"{{" without a closing "}}"', open);
    let bodyStart = open + 2;
    let bodyEnd = close;
    if (source[bodyStart] === '-' && /\s/.test(source[bodyStart + 1] ?? '')) {
      text = text.replace(/\s+$/, '');
      bodyStart += 1;
    }
    if (source[bodyEnd - 1] === '-' && /\s/.test(source[bodyEnd - 2] ?? '')) {
      trimNextText = true;
      bodyEnd -= 1;
    }
    if (text) parts.push(text);
    const body = source.slice(bodyStart, bodyEnd).trim();
    const macro = MACROS.get(body.toLowerCase());
    if (macro) {
      fields.add(macro);
      parts.push({ operand: { kind: 'field', name: macro }, calls: [] });
      i = close + 2;
      continue;
    }
    const tokens = lexAction(source, bodyStart, bodyEnd, fail);
    if (tokens.length === 0) fail('empty action "{{}}"', open);
    const first = tokens[0]!;
    let operand: Operand;
    if (first.kind === 'field') {
      const name = first.text.slice(1);
      if (!(TEMPLATE_FIELDS as readonly string[]).includes(name)) {
        fail(`unknown field ${JSON.stringify(first.text)}; known: ${TEMPLATE_FIELDS.map((f) => '.' + f).join(', ')}`, first.offset);
      }
      fields.add(name as TemplateField);
      operand = { kind: 'field', name: name as TemplateField };
    } else if (first.kind === 'string' || first.kind === 'number') {
      operand = { kind: 'literal', value: String(first.value) };
    } else {
      fail(`expected a field like .UserInput, a "string", {{char}} or {{user}}, found ${JSON.stringify(first.text)}`, first.offset);
    }
    const calls: Call[] = [];
    let k = 1;
    while (k < tokens.length) {
      const pipe = tokens[k]!;
      if (pipe.kind !== 'pipe') fail(`expected "|" before ${JSON.stringify(pipe.text)}`, pipe.offset);
      const nameTok = tokens[k + 1];
      if (!nameTok) fail('expected a function name after "|"', pipe.offset);
      if (nameTok.kind !== 'ident') fail(`expected a function name, found ${JSON.stringify(nameTok.text)}`, nameTok.offset);
      const fn = Object.hasOwn(TEMPLATE_FUNCTIONS, nameTok.text) ? TEMPLATE_FUNCTIONS[nameTok.text] : undefined;
      if (!fn) fail(`unknown function ${JSON.stringify(nameTok.text)}; known: ${Object.keys(TEMPLATE_FUNCTIONS).join(', ')}`, nameTok.offset);
      k += 2;
      const args: Literal[] = [];
      for (const want of fn.args) {
        const arg = tokens[k];
        const ok = arg && (want === 'int' ? arg.kind === 'number' : arg.kind === 'string');
        if (!ok) fail(`function ${nameTok.text} expects ${fn.args.map((a) => (a === 'int' ? 'a number' : 'a "string"')).join(' and ')}`, arg?.offset ?? nameTok.offset);
        args.push(arg.value!);
        k++;
      }
      if (nameTok.text === 'truncate' && (args[0] as number) < 0) fail('truncate needs a count >= 0', nameTok.offset);
      calls.push({ fn, args });
    }
    parts.push({ operand, calls });
    i = close + 2;
  }

  return {
    source,
    fields: [...fields],
    render(ctx: TemplateContext): string {
      let out = '';
      for (const part of parts) {
        if (typeof part === 'string') {
          out += part;
          continue;
        }
        let v = part.operand.kind === 'field' ? ctx[part.operand.name] : part.operand.value;
        for (const call of part.calls) v = call.fn.apply(v, call.args);
        out += v;
      }
      return out;
    },
  };
}
