import t from 'tap';
import { setImmediate as tick } from 'node:timers/promises';
import type { HttpExchange } from '../../src/server/http.js';
import { SseWriter } from '../../src/server/sse.js';

/**
 * A uWS response that records what is written to it, cork by cork: each
 * cork is one write to the socket.
 */
class RecordingResponse {
  readonly corks: string[][] = [];
  #current: string[] | undefined;
  /** What write() answers: false is uWS's "buffer full, wait for onWritable". */
  accept = true;
  writable: (() => boolean) | undefined;
  closed = false;

  cork(fn: () => void): void {
    this.#current = [];
    fn();
    this.corks.push(this.#current);
    this.#current = undefined;
  }

  #log(entry: string): void {
    if (!this.#current) throw new Error(`${entry} outside a cork`);
    this.#current.push(entry);
  }

  writeStatus(status: string): this {
    this.#log(`status ${status}`);
    return this;
  }

  writeHeader(key: string, value: string): this {
    this.#log(`header ${key}: ${value}`);
    return this;
  }

  write(chunk: string): boolean {
    this.#log(`write ${chunk}`);
    return this.accept;
  }

  end(): void {
    this.#log('end');
  }

  onWritable(fn: () => boolean): void {
    this.writable = fn;
  }

  close(): void {
    this.closed = true;
  }
}

/** The parts of HttpExchange that SseWriter uses, over a RecordingResponse. */
function exchange(): { x: HttpExchange; res: RecordingResponse; ended: () => number } {
  const res = new RecordingResponse();
  let ended = 0;
  const x = {
    res,
    finished: false,
    writeHead(headers: Record<string, string>) {
      res.writeStatus('200 OK');
      for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
    },
    ended() {
      ended++;
      x.finished = true;
    },
  };
  return { x: x as unknown as HttpExchange, res, ended: () => ended };
}

t.test('the status and headers leave with the first events, in one write', async (t) => {
  const { x, res, ended } = exchange();
  const sse = new SseWriter(x, 1024);
  sse.begin({ 'Content-Type': 'text/event-stream', 'X-Session-Id': 's1' });
  sse.write('data: one\n\n');
  sse.write('data: two\n\n');
  t.same(res.corks, [], 'nothing is written within the event-loop turn');
  await tick();
  t.same(res.corks, [['status 200 OK', 'header Content-Type: text/event-stream', 'header X-Session-Id: s1', 'write data: one\n\ndata: two\n\n']]);
  sse.begin({ 'X-Other': 'ignored' });
  sse.write('data: three\n\n');
  await tick();
  t.same(res.corks[1], ['write data: three\n\n'], 'later events go alone; a second begin() writes nothing');
  sse.end();
  await tick();
  t.same(res.corks[2], ['end']);
  t.equal(ended(), 1, 'the exchange is marked ended');
  sse.write('data: late\n\n');
  await tick();
  t.equal(res.corks.length, 3, 'nothing after the end');
});

t.test('a stream that ends before any event still sends its status and headers', async (t) => {
  const { x, res } = exchange();
  const sse = new SseWriter(x, 1024);
  sse.begin({ 'Content-Type': 'text/event-stream' });
  sse.end();
  await tick();
  t.same(res.corks, [['status 200 OK', 'header Content-Type: text/event-stream', 'end']]);
});

t.test('a full send buffer holds events until uWS says writable; a client that never reads is cut off', async (t) => {
  const { x, res } = exchange();
  const sse = new SseWriter(x, 64);
  sse.begin({ 'Content-Type': 'text/event-stream' });
  res.accept = false;
  sse.write('data: a\n\n');
  await tick();
  t.ok(res.writable, 'waits for onWritable');
  sse.write('data: b\n\n');
  sse.write('data: c\n\n');
  await tick();
  t.equal(res.corks.length, 1, 'nothing more is written while blocked');
  res.accept = true;
  res.cork(() => t.ok(res.writable!(), 'drained'));
  t.same(res.corks.at(-1), ['write data: b\n\ndata: c\n\n'], 'what waited leaves in one write');
  res.accept = false;
  sse.write('data: d\n\n');
  await tick();
  sse.write('x'.repeat(65));
  t.ok(res.closed, 'more than the queue bound: the connection is closed');
});
