/**
 * A protocol-v1 test client over the `ws` package: sends frames as MessagePack
 * (binary) or JSON (text), records every frame it receives, and waits for
 * frames matching a predicate.
 */
import { Packr, Unpackr } from 'msgpackr';
import WebSocket from 'ws';

const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

export type Frame = Record<string, any> & { t: string };

/** Frames as JSON for error messages, long strings cut. */
function brief(frames: Frame[]): string {
  return JSON.stringify(frames, (_k, v) => (typeof v === 'string' && v.length > 80 ? `${v.slice(0, 80)}…(${v.length})` : v));
}

export class TestClient {
  readonly frames: Frame[] = [];
  /** Whether each received message was binary, in order. */
  readonly binary: boolean[] = [];
  /** How many frames each received message carried (more than 1 only when batching). */
  readonly framesPerMessage: number[] = [];
  closeCode: number | undefined;
  closeReason = '';
  private waiters: { pred: (f: Frame) => boolean; from: number; resolve: (f: Frame) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }[] = [];
  private closeWaiters: (() => void)[] = [];

  private constructor(
    readonly ws: WebSocket,
    public format: 'msgpack' | 'json',
  ) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      // A binary message holds one frame, or several back to back for a
      // client that asked for batches.
      const frames = (isBinary ? unpackr.unpackMultiple(data) : [JSON.parse(data.toString('utf8'))]) as Frame[];
      this.frames.push(...frames);
      this.binary.push(isBinary);
      this.framesPerMessage.push(frames.length);
      this.check();
    });
    ws.on('close', (code, reason) => {
      this.closeCode = code;
      this.closeReason = reason.toString();
      for (const w of this.waiters) {
        clearTimeout(w.timer);
        w.reject(new Error(`connection closed (${code} ${this.closeReason}) while waiting; last frames: ${brief(this.frames.slice(-5))}`));
      }
      this.waiters = [];
      for (const c of this.closeWaiters) c();
    });
  }

  static connect(url: string, format: 'msgpack' | 'json' = 'msgpack', options: WebSocket.ClientOptions = {}): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, options);
      const client = new TestClient(ws, format);
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
  }

  send(frame: Record<string, unknown>): void {
    this.sendRaw(this.format === 'msgpack' ? packr.pack(frame) : JSON.stringify(frame));
  }

  sendRaw(data: Buffer | Uint8Array | string): void {
    this.ws.send(data, { binary: typeof data !== 'string' });
  }

  private check(): void {
    this.waiters = this.waiters.filter((w) => {
      // Each waiter scans every frame once, however many arrive.
      for (; w.from < this.frames.length; w.from++) {
        if (w.pred(this.frames[w.from]!)) {
          clearTimeout(w.timer);
          w.resolve(this.frames[w.from]!);
          return false;
        }
      }
      return true;
    });
  }

  /** Resolves with the first frame (received at or after index `from`) matching `pred`. */
  waitFor(pred: (f: Frame) => boolean, timeoutMs = 5000, from = 0): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.timer !== timer);
        reject(new Error(`timed out waiting for a frame; last frames: ${brief(this.frames.slice(-8))}`));
      }, timeoutMs);
      this.waiters.push({ pred, from, resolve, reject, timer });
      this.check();
    });
  }

  waitType(t: string, timeoutMs = 5000): Promise<Frame> {
    return this.waitFor((f) => f.t === t, timeoutMs);
  }

  /** Says hello and returns the welcome frame. */
  async hello(extra: Record<string, unknown> = {}): Promise<Frame> {
    const from = this.frames.length;
    this.send({ t: 'hello', v: 1, ...extra });
    return this.waitFor((f) => f.t === 'welcome' || (f.t === 'error' && f.seq === undefined), 5000, from);
  }

  /** Sends a chat and resolves with its done (or error) frame. */
  async chat(id: string, character: string, text: string, timeoutMs = 5000): Promise<Frame> {
    const from = this.frames.length;
    this.send({ t: 'chat', id, character, text });
    return this.waitFor((f) => (f.t === 'done' || f.t === 'error') && f.id === id, timeoutMs, from);
  }

  /** Frames of the session stream (they carry a seq; welcome's seq is not one). */
  streamFrames(): Frame[] {
    return this.frames.filter((f) => f.t !== 'welcome' && f.seq !== undefined);
  }

  framesFor(id: string): Frame[] {
    return this.frames.filter((f) => f.id === id);
  }

  closed(): Promise<void> {
    if (this.closeCode !== undefined) return Promise.resolve();
    return new Promise((r) => this.closeWaiters.push(r));
  }

  async close(): Promise<void> {
    if (this.closeCode !== undefined) return;
    this.ws.close();
    await this.closed();
  }

  /** Drops the TCP connection without a close handshake. */
  terminate(): void {
    this.ws.terminate();
  }
}

export { packr, unpackr };
