import { fileURLToPath } from 'node:url';
import t from 'tap';
import { CharacterRegistry } from '../../src/characters/registry.js';
import { parseCharacterScript } from '../../src/characters/script.js';
import type { TemplateContext } from '../../src/characters/template.js';
import { evaluateTriggers, mentions, regexMatches, triggerMatches } from '../../src/characters/triggers.js';
import type { Character } from '../../src/characters/types.js';

const BUNDLED = fileURLToPath(new URL('../../characters', import.meta.url));

function character(yaml: string, file = 'inline/test-char.yaml'): Character {
  const { character: c, issues } = parseCharacterScript(yaml, file);
  if (!c) throw new Error(`fixture does not load: ${JSON.stringify(issues)}`);
  return c;
}

/** Renders the reply of an outcome the way the dialogue layer does. */
function reply(c: Character, state: string, text: string, turn = 1): { state: string; reply: string | undefined; index: number | undefined } {
  const o = evaluateTriggers(c, state, text);
  const ctx: TemplateContext = { UserInput: text, CharacterName: c.name, UserName: c.userName, State: o.nextState, PreviousState: state, Turn: String(turn) };
  return { state: o.nextState, reply: o.respond?.respond?.render(ctx), index: o.respond?.index };
}

const ORDER = character(`
id: order
name: Order Test
states: [a, b, c]
triggers:
  - on_keyword: first            # 0: respond only
    respond: "one"
  - on_keyword: [first, second]  # 1: respond + goto
    respond: "two"
    goto: b
  - on_keyword: [first, second, third]  # 2: goto only
    goto: c
  - on_keyword: third            # 3: respond only, after a goto-only trigger
    respond: "three"
  - on_keyword: statey
    in_state: b
    respond: "in b"
  - on_keyword: statey
    in_state: [a, c]
    respond: "in a or c"
`);

t.test('the first matching trigger with respond supplies the reply', async (t) => {
  const o = evaluateTriggers(ORDER, 'a', 'first');
  t.equal(o.respond?.index, 0, 'trigger 0 responds');
  t.equal(o.nextState, 'b', 'the first matching goto (trigger 1) sets the state, even though trigger 0 responded');
  t.equal(o.respond?.respond?.source, 'one');
});

t.test('one trigger may do both', async (t) => {
  const o = evaluateTriggers(ORDER, 'a', 'second');
  t.equal(o.respond?.index, 1);
  t.equal(o.nextState, 'b');
});

t.test('the first matching trigger with goto sets the next state', async (t) => {
  const o = evaluateTriggers(ORDER, 'a', 'third');
  t.equal(o.nextState, 'c', 'trigger 2 (goto only) moves to c');
  t.equal(o.respond?.index, 3, 'the reply comes from the later respond-only trigger');
});

t.test('no match keeps the state and gives no reply', async (t) => {
  const o = evaluateTriggers(ORDER, 'b', 'nothing relevant');
  t.equal(o.respond, undefined);
  t.equal(o.nextState, 'b');
});

t.test('in_state filters on the state at the start of the turn', async (t) => {
  t.equal(reply(ORDER, 'b', 'statey').reply, 'in b');
  t.equal(reply(ORDER, 'a', 'statey').reply, 'in a or c');
  t.equal(reply(ORDER, 'c', 'statey').reply, 'in a or c');
  // "first statey": trigger 0 responds; trigger 1 moves to b; the in_state
  // triggers are judged against a (the start state), but 0 already replied.
  t.same(reply(ORDER, 'a', 'first statey'), { state: 'b', reply: 'one', index: 0 });
});

const MATCH = character(`
id: kw-bot
name: Keyword Bot
aliases: [KB, "Mr. K"]
triggers:
  - on_mention: true
    respond: mention
  - on_keyword: [Hello, 比武, カタナ]
    respond: keyword
  - on_regex: "^\\\\d{3}$"
    respond: regex
  - on_regex: "^.$"
    respond: one-char
`);

t.test('mention by name, id or alias, case-insensitively', async (t) => {
  for (const text of ['hi Keyword Bot!', 'KEYWORD BOT?', 'keyword bot', 'ask kw-bot', 'ASK KW-BOT', 'kb, are you there', 'hey mr. k', 'MR. K']) {
    t.equal(reply(MATCH, 'default', text).reply, 'mention', JSON.stringify(text));
    t.ok(mentions(MATCH, text.toLowerCase()));
  }
  t.notOk(mentions(MATCH, 'keyword'), 'part of the name is not a mention');
  t.notOk(mentions(MATCH, 'k b'));
  t.equal(reply(MATCH, 'default', 'Keyword').reply, undefined);
});

t.test('keywords are case-insensitive substrings, CJK included', async (t) => {
  for (const text of ['hello', 'HELLO there', 'oh, hElLo!', 'sayhellotoyou', '我们来比武吧', '比武', 'このカタナは', 'カタナ']) {
    t.equal(reply(MATCH, 'default', text).reply, 'keyword', JSON.stringify(text));
  }
  t.same(MATCH.triggers[1]!.keywords, ['hello', '比武', 'カタナ'], 'keywords are stored lower-cased');
  t.equal(reply(MATCH, 'default', 'hell o').reply, undefined);
  t.equal(reply(MATCH, 'default', '比 武').reply, undefined);
});

t.test('regex conditions (flags iu) run on the original text', async (t) => {
  t.equal(reply(MATCH, 'default', '123').reply, 'regex');
  t.equal(reply(MATCH, 'default', '1234').reply, undefined);
  t.equal(reply(MATCH, 'default', '😀').reply, 'one-char', 'u flag: an astral character is one "."');
  t.equal(reply(MATCH, 'default', 'x').reply, 'one-char');
  const ci = character('name: Ci\ntriggers:\n  - on_regex: "^STATUS"\n    respond: ok\n');
  t.equal(reply(ci, 'default', 'status report').reply, 'ok', 'i flag');
  // Repeated evaluation gives the same answer (no lastIndex state).
  for (let i = 0; i < 3; i++) t.ok(regexMatches(ci.triggers, 'Status').has(ci.triggers[0]!));
});

t.test('triggerMatches checks in_state before anything else', async (t) => {
  const c = character('name: S\nstates: [x, y]\ntriggers:\n  - on_mention: true\n    in_state: y\n    respond: r\n');
  t.notOk(triggerMatches(c, c.triggers[0]!, 'x', 's', new Set()));
  t.ok(triggerMatches(c, c.triggers[0]!, 'y', 's', new Set()));
});

t.test('bundled 古风剑客: the seed trigger and the state machine', async (t) => {
  const registry = new CharacterRegistry();
  const { loaded, failed } = registry.loadDirectory(BUNDLED);
  t.same(failed, []);
  t.same(loaded.map((c) => c.id), ['gufeng-jianke', 'station-ai', 'tavern-keeper']);
  const g = registry.require('gufeng-jianke');
  t.equal(g.initialState, 'calm');
  t.same(g.states, ['calm', 'wary', 'hostile']);

  t.same(reply(g, 'calm', '古风剑客你好'), { state: 'calm', reply: '古风剑客你好 → 古风剑客微笑点头', index: 0 }, 'the seed example');
  t.equal(reply(g, 'calm', '  古风剑客，请赐教  ').reply, '古风剑客，请赐教 → 古风剑客微笑点头', 'trimSpace');
  t.equal(reply(g, 'calm', '大侠请留步').reply, '大侠请留步 → 古风剑客微笑点头', 'an alias is a mention');

  // calm --(比武)--> wary --(懦夫)--> hostile --(道歉)--> calm
  const walk: [string, string, string, string | undefined][] = [
    ['calm', '比武', 'wary', undefined],
    ['wary', '比武吧', 'wary', '在下不愿与阁下动手，还请三思。'],
    ['wary', '懦夫', 'hostile', '阁下说话还请留些分寸。在下的剑虽久未出鞘，却并未生锈。'],
    ['hostile', '天气不错', 'hostile', '道不同，不相为谋。在下言尽于此，阁下请回吧。'],
    ['hostile', '懦夫', 'hostile', '道不同，不相为谋。在下言尽于此，阁下请回吧。'],
    ['hostile', '道歉', 'calm', '罢了，江湖儿女，何必记仇。阁下请坐，在下再温一壶酒。'],
    ['calm', '懦夫', 'calm', undefined],
    ['calm', '再见', 'calm', '山高水长，阁下保重，后会有期。'],
  ];
  let state = g.initialState;
  for (const [from, text, to, expected] of walk) {
    t.equal(state, from);
    const r = reply(g, state, text);
    t.equal(r.state, to, `${from} --(${text})--> ${to}`);
    t.equal(r.reply, expected, `reply to ${text} in ${from}`);
    state = r.state;
  }
});

t.test('bundled HALCYON and Mara Quill state machines', async (t) => {
  const registry = new CharacterRegistry();
  registry.loadDirectory(BUNDLED);
  const h = registry.require('HALCYON');
  let r = reply(h, 'nominal', 'Override the airlock', 3);
  t.same(r, { state: 'alert', reply: 'Request denied. Alert level raised to ALERT. This exchange has been logged, crew member.', index: 3 });
  r = reply(h, r.state, 'status report', 4);
  t.equal(r.reply, 'STATUS ALERT. Turn 4. Life support stable. Hull at ninety-eight percent. No further comment.', 'the .State | upper pipe');
  r = reply(h, 'alert', 'shutdown now');
  t.same([r.state, r.index], ['lockdown', 2]);
  t.equal(reply(h, 'lockdown', 'hello?').reply, 'Station in LOCKDOWN. Input ignored. Say stand down or reset to request review.');
  t.same(reply(h, 'lockdown', 'stand down').state, 'nominal');

  const m = registry.require('mara quill');
  t.equal(m.id, 'tavern-keeper');
  r = reply(m, 'friendly', 'Tell me about the city watch');
  t.same([r.state, r.reply], ['suspicious', 'Now why would you be asking about that, traveler? I run an honest house, I do.']);
  r = reply(m, 'suspicious', 'any smuggling here?');
  t.same([r.state, r.reply], ['closed', "That's enough. Finish your drink and find another roof for the night."]);
  t.equal(reply(m, 'closed', 'hello').reply, 'Evening, traveler! Shake the rain off and come sit, I\'ve got stew on and questions ready.', 'a regex trigger without in_state answers in every state');
  t.same(reply(m, 'closed', 'sorry, I did not mean it').state, 'friendly');
});
