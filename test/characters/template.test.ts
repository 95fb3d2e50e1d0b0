import t, { type Test } from 'tap';
import {
  compileTemplate,
  TEMPLATE_FIELDS,
  TEMPLATE_FUNCTIONS,
  type TemplateContext,
  TemplateError,
} from '../../src/characters/template.js';

const CTX: TemplateContext = {
  UserInput: '  hello world  ',
  CharacterName: 'Mara Quill',
  UserName: 'traveler',
  State: 'suspicious',
  PreviousState: 'friendly',
  Turn: '7',
};

const render = (source: string, ctx: TemplateContext = CTX) => compileTemplate(source).render(ctx);

/** Compiles `source` and returns the TemplateError it throws (fails the test when it compiles). */
function compileError(t: Test, source: string): TemplateError {
  try {
    compileTemplate(source);
  } catch (err) {
    if (err instanceof TemplateError) return err;
    t.fail(`${JSON.stringify(source)} threw ${String(err)}, not a TemplateError`);
    throw err;
  }
  t.fail(`${JSON.stringify(source)} compiled, expected a TemplateError`);
  return new TemplateError('(compiled)', 0, 0, 0);
}

t.test('fields render from the context', async (t) => {
  t.equal(render('{{.UserInput}}'), '  hello world  ');
  t.equal(render('{{.CharacterName}}'), 'Mara Quill');
  t.equal(render('{{.UserName}}'), 'traveler');
  t.equal(render('{{.State}}'), 'suspicious');
  t.equal(render('{{.PreviousState}}'), 'friendly');
  t.equal(render('{{.Turn}}'), '7');
  t.equal(render('{{ .State }}/{{.PreviousState}}/{{.Turn}}/{{.UserName}}/{{.CharacterName}}'), 'suspicious/friendly/7/traveler/Mara Quill');
  t.equal(render('Turn {{.Turn}}: {{.State}}.'), 'Turn 7: suspicious.', 'text around actions is kept');
  t.equal(render('{{.Turn}}{{.Turn}}'), '77', 'adjacent actions');
  t.equal(render('{{\t.Turn\n}}'), '7', 'tabs and newlines inside an action are blanks');
});

t.test('fields lists what a template reads, once each', async (t) => {
  t.same(compileTemplate('{{.UserInput}} {{.Turn}} {{.UserInput | upper}}').fields, ['UserInput', 'Turn']);
  t.same(compileTemplate('{{char}} and {{user}}').fields, ['CharacterName', 'UserName']);
  t.same(compileTemplate('plain text {{"lit"}} {{3}}').fields, []);
  t.same([...TEMPLATE_FIELDS], ['UserInput', 'CharacterName', 'UserName', 'State', 'PreviousState', 'Turn']);
  t.equal(compileTemplate('a {{.Turn}}').source, 'a {{.Turn}}', 'source is kept');
});

t.test('every function', async (t) => {
  t.same(Object.keys(TEMPLATE_FUNCTIONS), ['trimSpace', 'upper', 'lower', 'title', 'truncate', 'default', 'replace']);
  t.equal(render('{{.UserInput | trimSpace}}'), 'hello world');
  t.equal(render('{{ " \t\nx y\n " | trimSpace }}'), 'x y', 'trimSpace removes every kind of blank at both ends');
  t.equal(render('{{.UserInput | upper}}'), '  HELLO WORLD  ');
  t.equal(render('{{"Straße" | upper}}'), 'STRASSE', 'upper uses full Unicode case mapping');
  t.equal(render('{{.CharacterName | lower}}'), 'mara quill');
  t.equal(render('{{"ÀÉÎ" | lower}}'), 'àéî');
  t.equal(render('{{.UserInput | title}}'), '  Hello World  ');
  t.equal(render('{{"héllo wörld ñandú" | title}}'), 'Héllo Wörld Ñandú', 'title handles non-ASCII lower-case letters');
  t.equal(render('{{"hello WORLD mIxed" | title}}'), 'Hello WORLD MIxed', 'title only upper-cases first letters');
  t.equal(render('{{"a\tb\nc" | title}}'), 'A\tB\nC', 'any blank starts a word');
  t.equal(render('{{"古风 剑客" | title}}'), '古风 剑客', 'scripts without case are unchanged');

  t.equal(render('{{.UserInput | truncate 4}}'), '  he');
  t.equal(render('{{"abc" | truncate 3}}'), 'abc', 'exact length is kept');
  t.equal(render('{{"abc" | truncate 10}}'), 'abc', 'shorter input is kept');
  t.equal(render('{{"abc" | truncate 0}}'), '');
  t.equal(render('{{"古风剑客你好" | truncate 2}}'), '古风', 'CJK: counts characters');
  t.equal(render('{{"😀😁😂" | truncate 2}}'), '😀😁', 'counts code points, never splits a surrogate pair');
  t.equal(render('{{"a😀b" | truncate 2}}'), 'a😀');
  t.equal(render('{{"x" | truncate 007}}'), 'x', 'leading zeros in a number');

  t.equal(render('{{.UserInput | default "x"}}'), '  hello world  ', 'default keeps a non-blank value');
  t.equal(render('{{"" | default "fallback"}}'), 'fallback');
  t.equal(render('{{"  \n " | default "fallback"}}'), 'fallback', 'blank counts as empty');
  t.equal(render('{{.UserInput | trimSpace | default "……"}}', { ...CTX, UserInput: '   ' }), '……');

  t.equal(render('{{"aXbXc" | replace "X" "-"}}'), 'a-b-c', 'replace replaces every occurrence');
  t.equal(render('{{"abc" | replace "" "-"}}'), 'abc', 'replacing "" is a no-op');
  t.equal(render('{{"a.b.c" | replace "." ""}}'), 'abc', 'replace with "" deletes');
  t.equal(render('{{"$1 $& x" | replace "x" "$&$&"}}'), '$1 $& $&$&', 'no regex or $-pattern semantics');
  t.equal(render('{{"你好世界" | replace "世界" "江湖"}}'), '你好江湖');
});

t.test('chained pipes apply left to right', async (t) => {
  t.equal(render('{{.UserInput | trimSpace | upper}}'), 'HELLO WORLD');
  t.equal(render('{{.UserInput | trimSpace | truncate 5 | upper}}'), 'HELLO');
  t.equal(render('{{.UserInput | upper | trimSpace | replace "WORLD" "there" | title}}'), 'HELLO There');
  t.equal(render('{{ .UserInput|trimSpace|upper }}'), 'HELLO WORLD', 'no blanks around "|" needed');
  t.equal(render('{{.UserInput | truncate 2 | default "empty"}}'), 'empty', 'two blanks then default');
  t.equal(render('{{.UserInput | trimSpace | truncate 20 | default "……"}}'), 'hello world', 'the example from docs/characters.md');
});

t.test('string and number literals', async (t) => {
  t.equal(render('{{"text"}}'), 'text');
  t.equal(render('{{ 42 }}'), '42');
  t.equal(render('{{ -5 }}'), '-5');
  t.equal(render('{{ 007 }}'), '7', 'numbers are normalised');
  t.equal(render('{{ 42 | replace "4" "x" }}'), 'x2', 'a number literal pipes as text');
  t.equal(render('{{"a\\"b"}}'), 'a"b', 'escaped quote');
  t.equal(render('{{"a\\\\b"}}'), 'a\\b', 'escaped backslash');
  t.equal(render('{{"a\\nb\\tc"}}'), 'a\nb\tc', '\\n and \\t');
  t.equal(render('{{"\\q"}}'), 'q', 'other escapes keep the character');
  t.equal(render('{{""}}'), '', 'empty string literal');
  t.equal(render('{{"{{"}}'), '{{', 'a literal can hold "{{"');
  t.equal(render('{{"古风 😀"}}'), '古风 😀');
});

t.test('{{char}} and {{user}} macros, in any case', async (t) => {
  t.equal(render('{{char}}'), 'Mara Quill');
  t.equal(render('{{user}}'), 'traveler');
  t.equal(render('{{CHAR}} / {{User}} / {{ cHaR }} / {{  USER  }}'), 'Mara Quill / traveler / Mara Quill / traveler');
  t.equal(render('你是{{char}}，请称对方为“{{user}}”。'), '你是Mara Quill，请称对方为“traveler”。');
  t.equal(render('x {{- char -}} y'), 'xMara Quilly', 'macros take trim markers too');
});

t.test('{{- ... -}} trims surrounding whitespace', async (t) => {
  t.equal(render('a  {{- .Turn -}}  b'), 'a7b');
  t.equal(render('a \n\t {{- .Turn }} b'), 'a7 b', 'left trim only');
  t.equal(render('a {{ .Turn -}} \n\t b'), 'a 7b', 'right trim only');
  t.equal(render('{{- .Turn }}'), '7', 'nothing to trim at the start');
  t.equal(render('{{ .Turn -}}'), '7', 'nothing to trim at the end');
  t.equal(render('[ {{- .Turn -}} ]'), '[7]');
  t.equal(render('{{.Turn -}}   {{- .Turn}}'), '77', 'text made only of blanks vanishes');
  t.equal(render('{{ -5 }}'), '-5', '"{{ -5" is a negative number, not a trim marker');
  t.equal(render('a {{- -5 -}} b'), 'a-5b');
  const e = compileError(t, 'a {{-.Turn-}} b');
  t.match(e, { message: 'unexpected "-"', line: 1, column: 5 }, 'a trim marker needs a blank after it (as in Go)');
});

t.test('text without actions and unicode pass through unchanged', async (t) => {
  for (const text of ['', 'no actions here', 'a } b { c', '}} stray closer', 'single { brace }', '古风剑客 😀 é\n\tnew line', 'ends with {']) {
    t.equal(render(text), text, JSON.stringify(text));
    t.same(compileTemplate(text).fields, []);
  }
  t.equal(render('{{ "x" }} }}'), 'x }}', 'a "}}" after an action is text');
  t.equal(render('古风剑客{{.UserName}}你好'), '古风剑客traveler你好');
  t.equal(render('{{.UserInput}}', { ...CTX, UserInput: '{{.Turn}}' }), '{{.Turn}}', 'values are not re-parsed as templates');
});

t.test('rendering is repeatable and uses each context', async (t) => {
  const tpl = compileTemplate('{{.UserInput | trimSpace}} → {{.CharacterName}}微笑点头');
  t.equal(tpl.render({ ...CTX, UserInput: ' 古风剑客你好 ', CharacterName: '古风剑客' }), '古风剑客你好 → 古风剑客微笑点头');
  t.equal(tpl.render({ ...CTX, UserInput: 'b', CharacterName: 'B' }), 'b → B微笑点头');
  t.equal(tpl.render({ ...CTX, UserInput: ' 古风剑客你好 ', CharacterName: '古风剑客' }), '古风剑客你好 → 古风剑客微笑点头');
});

t.test('errors carry a message and a 1-based line and column', async (t) => {
  const cases: [string, string, number, number][] = [
    ['{{.Nope}}', 'unknown field ".Nope"; known: .UserInput, .CharacterName, .UserName, .State, .PreviousState, .Turn', 1, 3],
    ['{{ . }}', 'unknown field "."', 1, 4],
    ['{{ .userinput }}', 'unknown field ".userinput"', 1, 4],
    ['{{.UserInput | nope}}', 'unknown function "nope"; known: trimSpace, upper, lower, title, truncate, default, replace', 1, 16],
    ['{{.UserInput | Upper}}', 'unknown function "Upper"', 1, 16],
    ['{{.UserInput | truncate}}', 'function truncate expects a number', 1, 16],
    ['{{.UserInput | truncate "3"}}', 'function truncate expects a number', 1, 25],
    ['{{.UserInput | truncate -1}}', 'truncate needs a count >= 0', 1, 16],
    ['{{.UserInput | default}}', 'function default expects a "string"', 1, 16],
    ['{{.UserInput | default 3}}', 'function default expects a "string"', 1, 24],
    ['{{.UserInput | replace "a"}}', 'function replace expects a "string" and a "string"', 1, 16],
    ['{{.UserInput | replace "a" 1}}', 'function replace expects a "string" and a "string"', 1, 28],
    ['{{.UserInput | replace .Turn "b"}}', 'function replace expects a "string" and a "string"', 1, 24],
    ['abc {{ .UserInput', '"{{" without a closing "}}"', 1, 5],
    ['{{ "abc }}', 'unterminated string literal', 1, 4],
    ['{{ "}}" }}', 'unterminated string literal', 1, 4],
    ['{{}}', 'empty action "{{}}"', 1, 1],
    ['x {{   }}', 'empty action "{{}}"', 1, 3],
    ['{{- -}}', 'empty action "{{}}"', 1, 1],
    ['{{ .UserInput # }}', 'unexpected character "#"', 1, 15],
    ['{{ .UserInput ; }}', 'unexpected character ";"', 1, 15],
    ['{{ 😀 }}', 'unexpected character "\\ud83d"', 1, 4],
    ['{{ - }}', 'unexpected "-"', 1, 4],
    ['{{ .UserInput .Turn }}', 'expected "|" before ".Turn"', 1, 15],
    ['{{ .UserInput.Foo }}', 'expected "|" before ".Foo"', 1, 14],
    ['{{ 1-2 }}', 'expected "|" before "-2"', 1, 5],
    ['{{ .UserInput | }}', 'expected a function name after "|"', 1, 15],
    ['{{ .UserInput | "x" }}', 'expected a function name, found "\\"x\\""', 1, 17],
    ['{{ .UserInput | upper upper }}', 'expected "|" before "upper"', 1, 23],
    ['{{ trimSpace }}', 'expected a field like .UserInput, a "string", {{char}} or {{user}}, found "trimSpace"', 1, 4],
    ['{{ | upper }}', 'expected a field like .UserInput, a "string", {{char}} or {{user}}, found "|"', 1, 4],
    ['{{ charx }}', 'expected a field like .UserInput', 1, 4],
  ];
  for (const [source, message, line, column] of cases) {
    const e = compileError(t, source);
    t.ok(e.message.startsWith(message), `${JSON.stringify(source)}: ${e.message}`);
    t.same([e.line, e.column], [line, column], `${JSON.stringify(source)} at ${line}:${column}`);
    t.equal(e.name, 'TemplateError');
    t.ok(e instanceof Error);
  }
});

t.test('positions in a multi-line template', async (t) => {
  const source = [
    'Line one {{.UserName}}',
    '  second {{ .Turn }} fine',
    '    third {{ .UserInput | trimSpace',
    '      | bogus }} end',
  ].join('\n');
  const e = compileError(t, source);
  t.match(e.message, /^unknown function "bogus"/);
  t.equal(e.line, 4, 'the line of the bad token, inside a multi-line action');
  t.equal(e.column, 9, 'column counted from the start of that line');

  const e2 = compileError(t, 'l1\n  l2\n    {{ .UserInput | bogus }}');
  t.same([e2.line, e2.column], [3, 21]);
  const e3 = compileError(t, 'first\nsecond {{ .Bad }}');
  t.same([e3.line, e3.column], [2, 11]);
  const e4 = compileError(t, 'a\r\n{{ .Bad }}');
  t.same([e4.line, e4.column], [2, 4], 'CRLF ends a line too');
  const e5 = compileError(t, 'one\ntwo\n\nfour {{ "abc');
  t.same([e5.line, e5.column, e5.message], [4, 6, '"{{" without a closing "}}"'], 'an unclosed action is reported at its "{{"');
  const e6 = compileError(t, '古风剑客\n剑客 {{ .Nope }}');
  t.same([e6.line, e6.column], [2, 7], 'columns count UTF-16 units (one per CJK character)');
  const e7 = compileError(t, '{{ .Turn }}\n{{}}');
  t.same([e7.line, e7.column], [2, 1]);
});

t.test('the first problem is the one reported', async (t) => {
  const e = compileError(t, '{{ .A }} {{ .B | nope }}');
  t.same([e.message.slice(0, 19), e.line, e.column], ['unknown field ".A";', 1, 4]);
});

t.test('templates are data: nothing reaches JavaScript objects', async (t) => {
  // Fields
  for (const source of ['{{.constructor}}', '{{.__proto__}}', '{{.toString}}', '{{.hasOwnProperty}}', '{{.prototype}}', '{{.valueOf}}']) {
    const e = compileError(t, source);
    t.match(e.message, /^unknown field/, `${source} is an unknown field`);
    t.same([e.line, e.column], [1, 3]);
  }
  // Functions
  for (const fn of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', '__defineGetter__', 'apply', 'call', 'bind']) {
    const e = compileError(t, `{{.UserInput | ${fn}}}`);
    t.match(e.message, new RegExp(`^unknown function "${fn}"`), `${fn} is an unknown function`);
    t.same([e.line, e.column], [1, 16]);
  }
  // Bare identifiers are not fields, functions or globals
  for (const source of ['{{ process }}', '{{ globalThis }}', '{{ require }}', '{{ eval }}', '{{ this }}', '{{ Function }}']) {
    const e = compileError(t, source);
    t.match(e.message, /^expected a field like \.UserInput/, source);
  }
  // The context object is read only for the six fields
  const ctx = Object.assign(Object.create({ inherited: 'leak' }), CTX) as TemplateContext;
  t.equal(compileTemplate('{{.Turn}}').render(ctx), '7');
});

t.test('macro lookup does not reach Object.prototype', async (t) => {
  // {{char}}/{{user}} are looked up in a plain object literal with the action
  // body lower-cased; names inherited from Object.prototype must not count as
  // macros. Today `{{__proto__}}` and `{{constructor}}` compile, read a field
  // named after Object.prototype / Object, and render "undefined".
  for (const source of ['{{__proto__}}', '{{ constructor }}', '{{CONSTRUCTOR}}', '{{ __PROTO__ }}']) {
    let error: unknown;
    let rendered: string | undefined;
    try {
      rendered = compileTemplate(source).render(CTX);
    } catch (err) {
      error = err;
    }
    t.ok(error instanceof TemplateError, `${source} is rejected at compile time (rendered ${JSON.stringify(rendered)})`);
    if (error instanceof TemplateError) {
      t.match(error.message, /^expected a field like \.UserInput/);
      t.equal(error.line, 1);
    }
  }
});
