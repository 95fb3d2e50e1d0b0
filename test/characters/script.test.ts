import t from 'tap';
import {
  CHARACTER_ID_RE,
  formatIssue,
  idFromFileName,
  parseCharacterScript,
  type ParseResult,
} from '../../src/characters/script.js';
import type { TemplateContext } from '../../src/characters/template.js';
import type { CharacterIssue } from '../../src/characters/types.js';

const FILE = 'chars/test-char.yaml';
const ALLOWED_TOP = 'id, name, aliases, description, persona, system_prompt, greeting, user_name, examples, initial_state, states, triggers, lorebooks';
const ALLOWED_TRIGGER = 'on_mention, on_keyword, on_regex, in_state, if_trait, respond, goto, adjust';

const lines = (...l: string[]) => l.join('\n') + '\n';
const parse = (text: string, file = FILE): ParseResult => parseCharacterScript(text, file);
/** The issues as "line:column: message" strings, in reported order. */
const issues = (text: string, file = FILE): string[] => parse(text, file).issues.map((i) => `${i.line}:${i.column}: ${i.message}`);

const CTX: TemplateContext = { UserInput: 'hi there', CharacterName: 'Bot', UserName: 'Pal', State: 'b', PreviousState: 'a', Turn: '1' };

t.test('a full script produces the expected character', async (t) => {
  const text = lines(
    'id: my-bot',
    'name: "  Bot  "',
    'aliases: [ B1 , "", botty, 42]',
    'description: "desc of {{char}}"',
    "persona: 'trust: 0.5'",
    'system_prompt: "You are {{char}} talking to {{user}}"',
    'greeting: Hello',
    'user_name: Pal',
    'examples: [one, 2]',
    'initial_state: b',
    'states: [a, b]',
    'triggers:',
    '  - on_mention: true',
    '    respond: "Hi {{.UserName}}"',
    '  - on_keyword: [HeLLo, "  ", 你好, Ünïcode]',
    '    in_state: a',
    '    goto: b',
    '  - on_regex: "^yo\\\\b"',
    '    in_state: [a, b]',
    '    respond: yo {{.State}}',
    '    goto: a',
  );
  const { character: c, issues: problems } = parse(text, 'chars/other.yml');
  t.same(problems, []);
  if (!c) return t.fail('no character');
  t.equal(c.id, 'my-bot', 'id: wins over the file name');
  t.equal(c.name, 'Bot', 'name is trimmed');
  t.same(c.aliases, ['B1', 'botty', '42'], 'aliases trimmed, blanks dropped, numbers as text');
  t.equal(c.description, 'desc of {{char}}', 'texts are kept raw (rendered per prompt)');
  t.equal(c.persona, 'trust: 0.5');
  t.equal(c.systemPrompt, 'You are {{char}} talking to {{user}}');
  t.equal(c.greeting, 'Hello');
  t.equal(c.userName, 'Pal');
  t.same(c.examples, ['one', '2']);
  t.equal(c.initialState, 'b');
  t.same(c.states, ['a', 'b']);
  t.equal(c.source, 'chars/other.yml');
  t.ok(Object.isFrozen(c), 'the character is frozen');
  t.ok(Object.isFrozen(c.triggers) && Object.isFrozen(c.states) && Object.isFrozen(c.aliases) && Object.isFrozen(c.examples));
  t.equal(c.triggers.length, 3);

  const [t0, t1, t2] = c.triggers;
  t.match(t0, { index: 0, onMention: true, keywords: [], regex: undefined, inStates: undefined, goto: undefined });
  t.equal(t0!.respond?.source, 'Hi {{.UserName}}');
  t.equal(t0!.respond?.render(CTX), 'Hi Pal', 'respond is a compiled Template');

  t.match(t1, { index: 1, onMention: false, regex: undefined, respond: undefined, goto: 'b' });
  t.same(t1!.keywords, ['hello', '你好', 'ünïcode'], 'keywords lower-cased, blank ones dropped');
  t.ok(t1!.inStates instanceof Set);
  t.same([...t1!.inStates!], ['a'], 'one in_state becomes a one-element Set');

  t.ok(t2!.regex instanceof RegExp);
  t.equal(t2!.regex!.source, '^yo\\b');
  t.equal(t2!.regex!.flags, 'iu', 'regexes are compiled with flags iu');
  t.ok(t2!.regex!.test('YO there'), 'case-insensitive');
  t.same([...t2!.inStates!], ['a', 'b']);
  t.equal(t2!.respond?.render(CTX), 'yo b');
  t.equal(t2!.goto, 'a');
});

t.test('defaults', async (t) => {
  const { character: c, issues: problems } = parse('name: Bob\n');
  t.same(problems, []);
  t.match(c, {
    id: 'test-char',
    name: 'Bob',
    aliases: [],
    description: '',
    persona: '',
    systemPrompt: '',
    greeting: '',
    userName: 'User',
    examples: [],
    initialState: 'default',
    states: ['default'],
    triggers: [],
    source: FILE,
  });
  t.same(parse('name: Bob\ninitial_state: happy\n').character?.states, ['happy'], 'states default to [initial_state]');
  t.equal(parse('name: Bob\ninitial_state: happy\n').character?.initialState, 'happy');
  t.equal(parse('name: Bob\nstates: [x, y]\n').character?.initialState, 'x', 'initial_state defaults to the first state');
  t.equal(parse('name: Bob\nuser_name: "  "\n').character?.userName, 'User', 'a blank user_name falls back to User');
  t.equal(parse('name: Bob\nuser_name: " 阁下 "\n').character?.userName, '阁下');
  t.equal(parse('name: 42\n').character?.name, '42', 'a number name is text');
  t.equal(parse('name: Bob\nid: 123\n').character?.id, '123', 'a number id is text');
  t.same(parse('name: Bob\ntriggers:\n  - on_keyword: HI\n    respond: x\n').character?.triggers[0]?.keywords, ['hi'], 'on_keyword may be one string');
  t.equal(parse('name: Bob\ntriggers:\n').character?.triggers.length, 0, 'an empty triggers key is no triggers');
  t.equal(parse('# comment only\nname: Bob # trailing\n').character?.name, 'Bob');
});

t.test('id from the file name', async (t) => {
  t.equal(idFromFileName('characters/gufeng-jianke.yaml'), 'gufeng-jianke');
  t.equal(idFromFileName('C:\\chars\\Station-AI.YML'), 'station-ai', 'backslash paths, .YML, lower-cased');
  t.equal(idFromFileName('x.yaml.yaml'), 'x.yaml', 'only the last extension');
  t.equal(idFromFileName('noext'), 'noext');
  t.equal(parse('name: Bob\n', 'dir/Mara.YAML').character?.id, 'mara');
  t.ok(CHARACTER_ID_RE.test('a'.repeat(64)));
  t.notOk(CHARACTER_ID_RE.test('a'.repeat(65)));
  t.notOk(CHARACTER_ID_RE.test('-abc'));
  t.same(issues('name: Bob\n', 'dir/My Char.yaml'), [
    '1:1: file name gives the id "my char", which is not valid; add "id:" (lower-case letters, digits and -, up to 64)',
  ]);
  t.same(issues('\n\nname: Bob\n', 'dir/my_char.yml'), [
    '3:1: file name gives the id "my_char", which is not valid; add "id:" (lower-case letters, digits and -, up to 64)',
  ], 'reported at the start of the map');
  t.same(issues('name: Bob\nid: ok-id\n', 'dir/My Char.yaml'), [], 'an explicit id makes the file name irrelevant');
});

t.test('YAML syntax errors', async (t) => {
  t.same(issues('name: Bob\ntriggers: [\n'), ['3:1: Flow sequence in block collection must be sufficiently indented and end with a ]']);
  t.same(issues('name: "Bob\n'), ['2:1: Missing closing "quote']);
  const tab = parse('name: Bob\n\tid: x\n');
  t.equal(tab.character, undefined);
  t.equal(tab.issues.length >= 1, true);
  t.same([tab.issues[0]!.line, tab.issues[0]!.column], [2, 1], 'a tab indent is reported on its line');
});

t.test('duplicate keys', async (t) => {
  t.same(issues('name: Bob\nname: Rob\n'), ['2:1: Map keys must be unique']);
  t.same(issues('name: Bob\ntriggers:\n  - on_keyword: x\n    on_keyword: y\n    respond: a\n'), ['4:5: Map keys must be unique']);
});

t.test('unknown keys are reported at the key', async (t) => {
  t.same(issues('name: Bob\n  \nfoo: 1\n'), [`3:1: unknown character key "foo"; expected one of ${ALLOWED_TOP}`]);
  t.same(issues('name: Bob\nName: x\n'), [`2:1: unknown character key "Name"; expected one of ${ALLOWED_TOP}`], 'keys are case-sensitive');
  t.same(issues('name: Bob\n__proto__: {name: evil}\n'), [`2:1: unknown character key "__proto__"; expected one of ${ALLOWED_TOP}`]);
  t.same(issues('name: Bob\ntriggers:\n  - on_keyword: hi\n    respond: yo\n    bogus: 1\n'), [
    `5:5: unknown trigger key "bogus"; expected one of ${ALLOWED_TRIGGER}`,
  ]);
  t.same(issues('name: Bob\ntriggers:\n  - {on_keyword: hi, respond: yo, onregex: x}\n'), [
    `3:35: unknown trigger key "onregex"; expected one of ${ALLOWED_TRIGGER}`,
  ], 'flow-style map: column of the key');
});

t.test('name', async (t) => {
  t.same(issues('greeting: hi\n'), ['1:1: missing required key "name"']);
  t.same(issues('\n\ngreeting: hi\n'), ['3:1: missing required key "name"'], 'at the start of the map');
  t.same(issues('name:\n'), ['1:1: missing required key "name"'], 'null is missing, reported once');
  t.same(issues('name: "  "\n'), ['1:7: "name" must not be empty']);
  t.same(issues('name: [a]\n'), ['1:7: "name" must be a string']);
});

t.test('id', async (t) => {
  t.same(issues('name: Bob\nid: Bad_ID\n'), ['2:5: "id" must be lower-case letters, digits and - (up to 64), got "Bad_ID"']);
  t.same(issues('name: Bob\nid: "-x"\n'), ['2:5: "id" must be lower-case letters, digits and - (up to 64), got "-x"']);
  t.same(issues(`name: Bob\nid: ${'a'.repeat(65)}\n`), [`2:5: "id" must be lower-case letters, digits and - (up to 64), got "${'a'.repeat(65)}"`]);
  t.same(issues('name: Bob\nid:\n'), ['2:4: "id" must be lower-case letters, digits and - (up to 64), got ""'], 'an empty id');
});

t.test('lists', async (t) => {
  t.same(issues('name: Bob\naliases: x\n'), ['2:10: "aliases" must be a list of strings']);
  t.same(issues('name: Bob\nexamples: {a: 1}\n'), ['2:11: "examples" must be a list of strings']);
  t.same(issues('name: Bob\nexamples:\n  - ok\n  - [nested]\n'), ['4:5: each entry of "examples" must be a string']);
  t.same(issues(`name: Bob\naliases: [${Array.from({ length: 101 }, (_, i) => `a${i}`).join(', ')}]\n`), ['2:10: at most 100 aliases']);
});

t.test('states', async (t) => {
  t.same(issues('name: Bob\nstates: calm\n'), ['2:9: "states" must be a list of strings']);
  t.same(issues('name: Bob\nstates: [a, b, a]\n'), ['2:9: state names must be unique']);
  t.same(issues('name: Bob\nstates: ["a b", ok]\n'), ['2:10: state name "a b" must be 1-64 letters, digits, _ or -']);
  t.same(issues('name: Bob\nstates: [平静, 警惕]\n'), [], 'state names may be in any script');
  t.same(issues('name: Bob\nstates: [a, b]\ninitial_state: c\n'), ['3:16: initial_state "c" is not in states [a, b]']);
});

t.test('in_state and goto must name declared states', async (t) => {
  t.same(
    issues(lines('name: Bob', 'states: [a, b]', 'triggers:', '  - on_keyword: x', '    in_state: [a, zz]', '    goto: yy')),
    ['5:19: unknown state "zz"; states are [a, b]', '6:11: unknown state "yy"; states are [a, b]'],
  );
  t.same(
    issues(lines('name: Bob', 'states: [a, b]', 'triggers:', '  - on_keyword: x', '    in_state: nope', '    respond: r')),
    ['5:15: unknown state "nope"; states are [a, b]'],
    'a single in_state is reported at its value',
  );
  t.same(issues(lines('name: Bob', 'states: [a]', 'triggers:', '  - on_keyword: x', '    goto: 5')), ['5:11: a state name must be a string']);
  t.same(issues(lines('name: Bob', 'triggers:', '  - on_keyword: x', '    goto: default')), [], 'without states, "default" is the one state');
});

t.test('trigger shape', async (t) => {
  t.same(issues('name: Bob\ntriggers:\n  - respond: hi\n'), ['3:5: a trigger needs a condition: on_mention, on_keyword or on_regex']);
  t.same(issues('name: Bob\ntriggers:\n  - on_keyword: hi\n'), ['3:5: a trigger needs an action: respond, goto or adjust']);
  t.same(issues('name: Bob\ntriggers:\n  - in_state: default\n'), [
    '3:5: a trigger needs a condition: on_mention, on_keyword or on_regex',
    '3:5: a trigger needs an action: respond, goto or adjust',
  ]);
  t.same(issues('name: Bob\ntriggers:\n  - on_mention: false\n    respond: x\n'), ['3:5: a trigger needs a condition: on_mention, on_keyword or on_regex'], 'on_mention: false is no condition');
  t.same(issues('name: Bob\ntriggers:\n  - on_keyword: ["  "]\n    respond: x\n'), ['3:5: a trigger needs a condition: on_mention, on_keyword or on_regex'], 'blank keywords are no condition');
  t.same(issues('name: Bob\ntriggers:\n  - on_mention: "yes"\n    respond: x\n'), [
    '3:17: "on_mention" must be true or false',
    '3:5: a trigger needs a condition: on_mention, on_keyword or on_regex',
  ]);
  t.same(issues('name: Bob\ntriggers:\n  - hi\n'), ['3:5: each trigger must be a map']);
  t.same(issues('name: Bob\ntriggers: {a: 1}\n'), ['2:11: "triggers" must be a list']);
  t.same(issues('name: Bob\ntriggers:\n  - on_keyword: x\n    respond: [a]\n'), ['4:14: "respond" must be a string']);
  t.same(issues('name: Bob\ntriggers:\n  - on_regex: 5\n    respond: a\n'), ['3:15: "on_regex" must be a string']);
});

t.test('on_regex safety and syntax', async (t) => {
  t.same(issues('name: Bob\ntriggers:\n  - on_regex: "(a+)+$"\n    respond: x\n'), [
    '3:15: on_regex: a repeated group contains a repetition or an alternation (nested quantifiers backtrack exponentially)',
  ]);
  t.same(issues("name: Bob\ntriggers:\n  - on_regex: '(a)\\1'\n    respond: x\n"), ['3:15: on_regex: back-references are not allowed']);
  t.same(issues('name: Bob\ntriggers:\n  - on_regex: "(abc"\n    respond: a\n'), ['3:15: on_regex: Invalid regular expression: /(abc/iu: Unterminated group']);
  t.same(issues('name: Bob\ntriggers:\n  - on_regex: "\\\\p{Nope}"\n    respond: a\n'), ['3:15: on_regex: Invalid regular expression: /\\p{Nope}/iu: Invalid property name'], 'checked with the u flag');
});

t.test('template errors point into the template', async (t) => {
  const msg = 'template: unknown field ".Nope"; known: .UserInput, .CharacterName, .UserName, .State, .PreviousState, .Turn';
  // `    respond: hello {{.Nope}}` — the plain scalar starts at column 14, ".Nope" is at column 22.
  t.same(issues('name: Bob\ntriggers:\n  - on_keyword: hi\n    respond: hello {{.Nope}}\n'), [`4:22: ${msg}`], 'plain scalar');
  // `    respond: "hello {{.Nope}}"` — the quote is at column 14, ".Nope" at column 23.
  t.same(issues('name: Bob\ntriggers:\n  - on_keyword: hi\n    respond: "hello {{.Nope}}"\n'), [`4:23: ${msg}`], 'double-quoted scalar');
  t.same(issues("name: Bob\ntriggers:\n  - on_keyword: hi\n    respond: 'hello {{.Nope}}'\n"), [`4:23: ${msg}`], 'single-quoted scalar');
  t.same(issues('name: Bob\ngreeting: "hi {{ .UserInput | bad }}"\n'), [
    '2:31: template: unknown function "bad"; known: trimSpace, upper, lower, title, truncate, default, replace',
  ], 'greeting is a template too');
  t.same(issues('name: Bob\nsystem_prompt: You are {{char}} {{ }}\n'), ['2:33: template: empty action "{{}}"'], 'system_prompt');
  t.same(issues('name: Bob\ndescription: "{{ .Turn"\n'), ['2:15: template: "{{" without a closing "}}"'], 'description');
  const persona = parse('name: Bob\npersona: \'trust: 0.5; speech_style: "says {{ .Nope }}"\'\n');
  t.same(persona.issues, [], 'persona is DSL text, not a template');
  t.equal(persona.character?.persona, 'trust: 0.5; speech_style: "says {{ .Nope }}"', 'and is kept as written');
  t.same(issues('name: Bob\ntriggers:\n  - on_keyword: hi\n    respond: "{{.UserInput | truncate -1}}"\n'), ['4:30: template: truncate needs a count >= 0']);
});

t.test('several errors in one file are all reported', async (t) => {
  const text = lines(
    'name: Bob', //              1
    'id: BAD', //                2
    'foo: 1', //                 3
    'states: [a]', //            4
    'triggers:', //              5
    '  - respond: x', //         6
    '  - on_keyword: y', //      7
    '    goto: q', //            8
    '  - on_regex: "(a|aa)*"', // 9
    '    respond: "{{.X}}"', //  10
  );
  const r = parse(text);
  t.equal(r.character, undefined, 'no character when there are issues');
  t.same(r.issues.map((i) => `${i.line}:${i.column}: ${i.message.split(';')[0]}`), [
    '3:1: unknown character key "foo"',
    '2:5: "id" must be lower-case letters, digits and - (up to 64), got "BAD"',
    '6:5: a trigger needs a condition: on_mention, on_keyword or on_regex',
    '8:11: unknown state "q"',
    '9:15: on_regex: a repeated group contains a repetition or an alternation (nested quantifiers backtrack exponentially)',
    '10:17: template: unknown field ".X"',
  ]);
  t.ok(r.issues.every((i) => i.file === FILE), 'every issue names the file');
});

t.test('YAML aliases: a billion-laughs file is refused, not expanded', async (t) => {
  const bomb = lines(
    'name: Bob',
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
    'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
    'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
    'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
    'f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]',
    'g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]',
    'h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]',
    'i: [*h,*h,*h,*h,*h,*h,*h,*h,*h]',
  );
  const r = parse(bomb);
  t.equal(r.character, undefined);
  t.same(r.issues, [{ file: FILE, line: 1, column: 1, message: 'Excessive alias count indicates a resource exhaustion attack' }]);
  // A few ordinary aliases are fine.
  const ok = parse(lines('name: Bob', 'states: &s [a, b]', 'triggers:', '  - on_keyword: x', '    in_state: *s', '    goto: b'));
  t.same(ok.issues, []);
  t.same([...ok.character!.triggers[0]!.inStates!], ['a', 'b'], 'an alias resolves to its anchor');
});

t.test('the document must be a map', async (t) => {
  const msg = 'a character script must be a YAML map (name: ..., triggers: ...)';
  t.same(issues('- name: Bob\n- name: Rob\n'), [`1:1: ${msg}`], 'a top-level list');
  t.same(issues('\n\n- name: Bob\n'), [`3:1: ${msg}`], 'reported where the list starts');
  t.same(issues('just text\n'), [`1:1: ${msg}`], 'a scalar');
  t.same(issues(''), [`1:1: ${msg}`], 'an empty file');
  t.same(issues('# only a comment\n'), [`1:1: ${msg}`]);
  t.same(issues('null\n'), [`1:1: ${msg}`]);
});

t.test('formatIssue', async (t) => {
  const i: CharacterIssue = { file: 'characters/x.yaml', line: 12, column: 3, message: 'something is wrong' };
  t.equal(formatIssue(i), 'characters/x.yaml:12:3: something is wrong');
  const r = parse('name: Bob\nfoo: 1\n', '/abs/path/bob.yaml');
  t.equal(formatIssue(r.issues[0]!), `/abs/path/bob.yaml:2:1: unknown character key "foo"; expected one of ${ALLOWED_TOP}`);
});

t.test('template positions in block scalars', async (t) => {
  // The position is computed from the start of the node, which for a block
  // scalar is the "|" header line, so the line is one too early, and the
  // column ignores the block's indentation. The error is at 6:15.
  const got = issues('name: Bob\ntriggers:\n  - on_keyword: hi\n    respond: |\n      line one\n      hello {{.Nope}}\n');
  t.equal(got.length, 1);
  t.equal(got[0]?.split(': ')[0], '6:15', `reported ${got[0]?.split(': ')[0]}`);
});

t.test('template positions with escapes in a double-quoted scalar', async (t) => {
  // The column is computed from the decoded string, so an escape sequence
  // before the error (2+ source characters, 1 template character) shifts it.
  // `    respond: "\t{{.Nope}}"`: ".Nope" is at column 19 of the line.
  const got = issues('name: Bob\ntriggers:\n  - on_keyword: hi\n    respond: "\\t{{.Nope}}"\n');
  t.equal(got[0]?.slice(0, 5), '4:19:', `reported ${got[0]?.slice(0, 5)}`);
});

t.test('the persona is parsed, and its problems point into the file', async (t) => {
  const ok = parse('name: Bob\npersona: \'trust: 0.7; react_to_conflict: "withdraw"; core_value: "autonomy"\'\n');
  t.same(ok.issues, []);
  t.equal(ok.character?.personaSpec?.trust, 0.7);
  t.same(ok.character?.personaSpec?.coreValues, ['autonomy']);
  t.same(issues("name: Bob\npersona: 'trust: 1.5'\n").map((i) => i.slice(0, 5)), ['2:18:'], 'a quoted persona: the value\'s column in the file');
  // Escapes take more of the file than of the value: \" and \t in double quotes, '' in single quotes.
  const dq = 'name: Bob\npersona: "trust: 0.7; likes: \\"a\\tb\\"; mood: x"\n';
  t.same(issues(dq).map((i) => i.split(': ')[0]), [`2:${dq.split('\n')[1]!.indexOf('mood: x') + 7}`], 'double quotes with escapes: the column of x');
  const sq = "name: Bob\npersona: 'trust: 0.7; likes: ''a''; mood: x'\n";
  t.same(issues(sq).map((i) => i.split(': ')[0]), [`2:${sq.split('\n')[1]!.indexOf('mood: x') + 7}`], "single quotes with '': the column of x");
  const block = issues('name: Bob\npersona: |\n  trust: 0.5\n  react_to_conflict: sulk\n');
  t.equal(block.length, 1);
  t.match(block[0], /^4:22: persona: "react_to_conflict" must be one of/, `a block persona: line and column of the bad value (${block[0]})`);
  t.match(issues("name: Bob\npersona: 'react_to_conflict: withdraw'\n")[0], /persona: .*trust/, 'trust is required');
  // A second position a message names is in the file too.
  t.same(issues('name: Bob\npersona: |\n  trust: 0.5\n  mood: calm\n  mood: wary\n'), [
    '5:3: persona: duplicate key "mood": it is already set at 4:3; expected each key once (only core_value, likes, dislikes, taboo repeat)',
  ]);
  const open = "persona: 'trust: 0.5; likes: [tea, cake'";
  t.same(issues(`name: Bob\n${open}\n`), [`2:${open.length}: persona: unterminated list: expected "]" to close the "[" at 2:${open.indexOf('[') + 1}, found the end of the text`]);
  t.same(parse("name: Bob\npersona: 'trust: 0.5; trsut: 1'\n").issues, [], 'warnings (an unknown key) do not stop the load');
});

t.test('triggers test and change persona traits', async (t) => {
  const yaml = [
    'name: Bob',
    "persona: 'trust: 0.7'",
    'triggers:',
    '  - on_keyword: [fool]',
    '    adjust: {trust: -0.3, warmth: {set: 0.1}}',
    '    respond: Hmph.',
    '  - on_regex: "."',
    '    if_trait: "trust < 0.5"',
    '    respond: I do not trust you.',
  ].join('\n');
  const { character, issues: problems } = parse(yaml);
  t.same(problems, []);
  t.same(character!.triggers[0]!.adjust, [{ key: 'trust', change: -0.3 }, { key: 'warmth', change: { set: 0.1 } }]);
  t.same(character!.triggers[1]!.traitConditions, [{ kind: 'compare', key: 'trust', op: '<', value: 0.5 }]);
  t.match(issues("name: Bob\npersona: 'trust: 0.5'\ntriggers:\n  - on_mention: true\n    adjust: {mood: 1}\n")[0], /^5:20: adjust: "mood" is not a numeric trait/);
  t.match(issues("name: Bob\npersona: 'trust: 0.5'\ntriggers:\n  - on_mention: true\n    if_trait: \"trust ~ 1\"\n    respond: x\n")[0], /^5:15: if_trait: /);
  t.match(issues('name: Bob\ntriggers:\n  - on_mention: true\n    if_trait: "trust < 1"\n    respond: x\n')[0], /needs the character to have a persona/);
});
