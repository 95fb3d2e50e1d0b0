import t from 'tap';
import type { StreamFrame } from '../../src/protocol/types.js';
import { ReplayLog } from '../../src/session/replay-log.js';

const frame = (seq: number): StreamFrame => ({ t: 'token', seq, id: 'm', text: `t${seq}` });
const seqs = (frames: StreamFrame[] | undefined) => frames?.map((f) => f.seq);
const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

t.test('an empty log', async (t) => {
  const log = new ReplayLog(4);
  t.equal(log.capacity, 4);
  t.equal(log.size, 0);
  t.equal(log.oldestSeq, undefined);
  t.same(log.since(0, 0), [], 'caught up');
  t.equal(log.since(0, 3), undefined, 'frames 1..3 are not here');
});

t.test('push below capacity', async (t) => {
  const log = new ReplayLog(4);
  for (let s = 1; s <= 3; s++) log.push(frame(s));
  t.equal(log.size, 3);
  t.equal(log.oldestSeq, 1);
  t.same(seqs(log.since(0, 3)), [1, 2, 3]);
  t.same(seqs(log.since(1, 3)), [2, 3]);
  t.same(seqs(log.since(2, 3)), [3]);
  t.same(log.since(3, 3), []);
  t.same(log.since(10, 3), [], 'a client ahead of the stream gets nothing');
  const f = frame(4);
  log.push(f);
  t.equal(log.since(3, 4)![0], f, 'frames are kept by reference');
});

t.test('wraparound at capacity', async (t) => {
  const log = new ReplayLog(3);
  for (let s = 1; s <= 7; s++) log.push(frame(s));
  t.equal(log.size, 3);
  t.equal(log.oldestSeq, 5);
  t.same(seqs(log.since(4, 7)), [5, 6, 7]);
  t.same(seqs(log.since(5, 7)), [6, 7]);
  t.same(seqs(log.since(6, 7)), [7]);
  t.same(log.since(7, 7), []);
  t.equal(log.since(3, 7), undefined, 'frame 4 was evicted');
  t.equal(log.since(0, 7), undefined);
  t.same(log.since(6, 7)!.map((f) => (f as { text: string }).text), ['t7'], 'the frames themselves, not just seqs');
});

t.test('clear()', async (t) => {
  const log = new ReplayLog(3);
  for (let s = 1; s <= 5; s++) log.push(frame(s));
  log.clear();
  t.equal(log.size, 0);
  t.equal(log.oldestSeq, undefined);
  t.equal(log.since(4, 5), undefined, 'after clear, a resume reports a gap');
  t.same(log.since(5, 5), []);
  // The stream continues after the clear.
  for (let s = 6; s <= 10; s++) log.push(frame(s));
  t.equal(log.oldestSeq, 8);
  t.same(seqs(log.since(7, 10)), [8, 9, 10]);
  t.equal(log.since(6, 10), undefined);
  t.same(seqs(log.since(9, 10)), [10]);
});

t.test('property: since() over many capacities and push counts', async (t) => {
  let checks = 0;
  let failures = 0;
  for (let capacity = 1; capacity <= 9; capacity++) {
    for (let pushed = 0; pushed <= 3 * capacity + 2; pushed++) {
      const log = new ReplayLog(capacity);
      for (let s = 1; s <= pushed; s++) log.push(frame(s));
      const oldest = pushed === 0 ? undefined : Math.max(1, pushed - capacity + 1);
      const ok = (cond: boolean, what: string) => {
        checks++;
        if (!cond) {
          failures++;
          t.fail(`capacity ${capacity}, pushed ${pushed}: ${what}`);
        }
      };
      ok(log.size === Math.min(pushed, capacity), 'size');
      ok(log.oldestSeq === oldest, 'oldestSeq');
      for (let after = 0; after <= pushed + 1; after++) {
        const got = log.since(after, pushed);
        let want: number[] | undefined;
        if (after >= pushed) want = [];
        else if (oldest === undefined || oldest > after + 1) want = undefined;
        else want = range(after + 1, pushed);
        ok(JSON.stringify(seqs(got)) === JSON.stringify(want), `since(${after}) = ${JSON.stringify(seqs(got))}, want ${JSON.stringify(want)}`);
      }
    }
  }
  t.equal(failures, 0, `${checks} checks`);
  t.ok(checks > 500);
});

t.test('property: interleaved pushes and reads against a model', async (t) => {
  for (const capacity of [1, 2, 5, 16]) {
    const log = new ReplayLog(capacity);
    const all: StreamFrame[] = [];
    let bad = 0;
    for (let s = 1; s <= 100; s++) {
      const f = frame(s);
      log.push(f);
      all.push(f);
      for (const after of [s - 1, s - capacity, s - capacity - 1, 0]) {
        if (after < 0) continue;
        const want = after >= s ? [] : after + 1 < s - capacity + 1 ? undefined : all.slice(after);
        const got = log.since(after, s);
        if (want === undefined ? got !== undefined : got === undefined || got.length !== want.length || got.some((g, i) => g !== want[i])) bad++;
      }
    }
    t.equal(bad, 0, `capacity ${capacity}: every read matches the model`);
  }
});
