import t from 'tap';
import { StopScanner } from '../../src/dialogue/stop.js';

/** Feeds pieces and returns what is shown, the shown pieces, and whether a stop ended it. */
function run(stops: string[], pieces: string[]): { text: string; shown: string[]; stopped: boolean } {
  const s = new StopScanner(stops);
  const shown: string[] = [];
  let stopped = false;
  for (const p of pieces) {
    const step = s.push(p);
    if (step.text) shown.push(step.text);
    if (step.stopped) {
      stopped = true;
      break;
    }
  }
  if (!stopped) {
    const rest = s.flush();
    if (rest) shown.push(rest);
  }
  return { text: shown.join(''), shown, stopped };
}

t.test('cuts before the first stop sequence, inside one piece', async (t) => {
  t.same(run(['\nUser:'], ['Hello there.\nUser: hi']), { text: 'Hello there.', shown: ['Hello there.'], stopped: true });
  t.same(run(['END'], ['no stop here']), { text: 'no stop here', shown: ['no stop here'], stopped: false });
});

t.test('finds a sequence split across pieces, and holds back only a possible start', async (t) => {
  const r = run(['gs i'], ['the', ' lantern', ' swings', ' in', ' the', ' rain']);
  t.equal(r.text, 'the lantern swin');
  t.ok(r.stopped);
  t.same(r.shown, ['the', ' lantern', ' swin'], 'text that cannot start the sequence is shown at once');
  const one = run(['abc'], ['a', 'b', 'c', 'd']);
  t.same(one, { text: '', shown: [], stopped: true });
});

t.test('a held tail that turns out not to be a stop is shown later, nothing lost', async (t) => {
  const r = run(['<END>'], ['one <', 'E', 'nd two <E', 'N', ' three']);
  t.equal(r.text, 'one <End two <EN three');
  t.notOk(r.stopped);
  t.equal(run(['<END>'], ['tail <EN']).text, 'tail <EN', 'flush at the end shows the held tail');
});

t.test('the earliest of several sequences wins', async (t) => {
  t.equal(run(['B', 'A'], ['xxAyyB']).text, 'xx');
  t.equal(run(['stop', 'long stop'], ['a long stop']).text, 'a ', 'the one that starts first');
  t.equal(run(['\n\n', '###'], ['para one', '\n', '\npara two']).text, 'para one');
});

t.test('Unicode text is cut on character boundaries', async (t) => {
  t.equal(run(['。'], ['天色已晚', '，在下独坐山崖。', '只为等一位故人']).text, '天色已晚，在下独坐山崖');
  t.equal(run(['😀x'], ['a😀', 'b']).text, 'a😀b');
});

t.test('after a stop nothing more is shown', async (t) => {
  const s = new StopScanner(['x']);
  t.same(s.push('ax'), { text: 'a', stopped: true });
  t.same(s.push('more'), { text: '', stopped: true });
  t.ok(s.stopped);
  t.equal(s.flush(), '');
});
