/**
 * WebSocket protocol v1 at /v1/ws (docs/protocol.md). A connection attaches to
 * one session with `hello` and receives the session's stream frames in seq
 * order. Sending is flow-controlled: when uWS reports backpressure the
 * connection stops taking live frames and, on `drain`, catches up from the
 * session's replay log, so a slow client never makes the server buffer a
 * whole stream per socket, and never sees a frame twice or out of order.
 */
import type { TemplatedApp, WebSocket } from 'uWebSockets.js';
import { NpcdError, toNpcdError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { FrameCodec, WireFormat } from '../protocol/codec.js';
import {
  type ChatFrame,
  CLIENT_FRAME_TYPES,
  type ClientFrame,
  type ClientFrameType,
  type ErrorFrame,
  type HelloFrame,
  SERVER_FRAME_TYPES,
  type ServerFrame,
  type ServerFrameType,
  type StreamFrame,
  type WelcomeFrame,
} from '../protocol/types.js';
import { MAX_ID_LENGTH, parseClientFrame } from '../protocol/validate.js';
import type { SessionEngine } from '../session/engine.js';
import type { Session } from '../session/session.js';
import { checkApiKey } from './auth.js';
import { statusLine } from './http.js';
import { traceHeaders } from '../tracing/trace-context.js';

export interface WsLimits {
  readonly maxConnections: number;
  readonly maxFrameBytes: number;
  readonly maxMessageChars: number;
  readonly heartbeatIntervalMs: number;
  readonly idleTimeoutMs: number;
  /** A connection without a session this long after opening is closed. */
  readonly helloTimeoutMs: number;
  readonly wsMaxBackpressureBytes: number;
  readonly apiKeys: readonly string[];
}

export interface WsDeps {
  readonly engine: SessionEngine;
  /** MessagePack implementation (native or msgpackr). */
  readonly codec: FrameCodec;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly limits: WsLimits;
}

interface UserData {
  conn: Connection | undefined;
}

/** Frames a client may pipeline after `hello` before the welcome is sent. */
const MAX_PENDING_FRAMES = 32;

/** Closes a WebSocket connection with a reason for the close metric. */
type CloseReason = 'client' | 'heartbeat_timeout' | 'hello_timeout' | 'taken_over' | 'shutdown' | 'auth';

export class Connection {
  format: WireFormat = 'msgpack';
  /** The client asked (in hello) for several MessagePack frames per message. */
  batch = false;
  session: Session | undefined;
  /** Seq of the last stream frame sent (or deliberately skipped). */
  cursor = 0;
  paused = false;
  closed = false;
  private flushScheduled = false;
  /** Frames the session logged since the scheduled flush was set (see deliver). */
  private unflushed = 0;
  /** Frames a burst may log before they are sent without waiting for the flush: half the replay log. */
  private burstFrames = 1;
  closeReason: CloseReason = 'client';
  lastSeen = Date.now();
  readonly openedAt = Date.now();
  /** Frames received while `hello` is being processed; undefined when no hello is pending. */
  pending: ClientFrame[] | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly highWater: number;

  constructor(
    readonly ws: WebSocket<UserData>,
    private readonly server: WsServer,
  ) {
    this.highWater = server.deps.limits.wsMaxBackpressureBytes / 16;
  }

  /** Sends a frame that is not part of the stream (welcome, pong, connection errors). */
  sendControl(frame: ServerFrame): void {
    if (this.closed) return;
    this.ws.cork(() => this.ws.send(this.server.deps.codec.encodeFrame(frame, this.format), this.format === 'msgpack'));
    this.server.framesOut[frame.t].value++;
  }

  sendError(err: unknown, id?: string): void {
    const e = toNpcdError(err);
    const frame: ErrorFrame = { t: 'error', code: e.code, message: e.message };
    if (id !== undefined) frame.id = id;
    this.sendControl(frame);
  }

  /** Ends the connection with an error frame first, using the code's close code. */
  endWith(err: NpcdError, reason: CloseReason): void {
    if (this.closed) return;
    // Stream frames waiting for the end-of-turn flush go first.
    if (this.session && !this.paused) this.ws.cork(() => this.catchUp());
    this.sendError(err);
    this.closeReason = reason;
    this.ws.end(err.closeCode ?? 1008, err.code);
  }

  attach(session: Session, cursor: number): void {
    this.session = session;
    this.cursor = cursor;
    this.burstFrames = Math.max(1, Math.floor(session.log.capacity / 2));
    session.owner = this;
    this.unsubscribe = session.subscribe(() => this.deliver());
  }

  detach(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    if (this.session && this.session.owner === this) {
      this.session.owner = undefined;
      this.session.data.lastActive = Date.now();
    }
  }

  /**
   * A new frame in the session's stream. Sending waits for the end of this
   * event-loop turn, so frames produced together (a burst of tokens) leave
   * in one corked write instead of one syscall each; the frames themselves
   * are read from the replay log, which is also what catch-up after
   * backpressure and resume use. A burst of half the log's size is sent at
   * once: a provider that hands over more frames than the log holds within
   * one turn would otherwise push the first of them out of the log before
   * this connection, keeping up, had them.
   */
  private deliver(): void {
    if (this.closed || this.paused) return;
    if (this.flushScheduled) {
      if (++this.unflushed < this.burstFrames) return;
      this.unflushed = 0;
      this.ws.cork(() => this.catchUp());
      return;
    }
    this.flushScheduled = true;
    this.unflushed = 1;
    setImmediate(this.flush);
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.closed || this.paused) return;
    this.ws.cork(() => this.catchUp());
  };

  /**
   * Sends `count` stream frames starting at `frames[first]`, already encoded
   * as `data` (one WebSocket message); false when the connection should stop
   * sending for now.
   */
  private sendStream(data: Uint8Array | string, frames: readonly StreamFrame[], first: number, count: number): boolean {
    const status = this.ws.send(data, this.format === 'msgpack');
    if (status === 2) {
      // Dropped by uWS (over maxBackpressure): the cursor stays, drain resends.
      this.pause();
      return false;
    }
    for (let i = first; i < first + count; i++) this.server.framesOut[frames[i]!.t].value++;
    this.cursor = frames[first + count - 1]!.seq;
    if (status === 0 || this.ws.getBufferedAmount() > this.highWater) {
      this.pause();
      return false;
    }
    return true;
  }

  /**
   * Sends frames in order. MessagePack frames are encoded a run at a time
   * into one buffer (src/protocol/codec.ts); a client that accepts batches
   * gets each run as one message.
   */
  private sendFrames(frames: readonly StreamFrame[]): void {
    if (this.format === 'json') {
      for (let i = 0; i < frames.length; i++) if (!this.sendStream(JSON.stringify(frames[i]), frames, i, 1)) return;
      return;
    }
    const codec = this.server.deps.codec;
    for (let i = 0; i < frames.length; ) {
      const n = codec.encodeRun(frames, i);
      const { bytes, ends } = codec;
      if (this.batch && n > 1) {
        if (!this.sendStream(bytes.subarray(0, ends[n - 1]), frames, i, n)) return;
      } else {
        for (let j = 0, start = 0; j < n; start = ends[j]!, j++) {
          if (!this.sendStream(bytes.subarray(start, ends[j]), frames, i + j, 1)) return;
        }
      }
      i += n;
    }
  }

  private pause(): void {
    if (!this.paused) this.server.deps.metrics.wsBackpressurePauses.inc();
    this.paused = true;
  }

  /** Sends every stream frame after the cursor that the log still holds (call corked). */
  catchUp(): void {
    const s = this.session;
    if (!s || this.closed) return;
    let frames = s.log.since(this.cursor, s.seq);
    if (frames === undefined) {
      // Fell behind the log: say which frames are gone, go on with the oldest kept.
      const oldest = s.log.oldestSeq ?? s.seq + 1;
      this.server.deps.metrics.wsFramesDropped.inc(Math.max(0, oldest - this.cursor - 1));
      this.sendError(new NpcdError('ERR_RESUME_GAP', `frames ${this.cursor + 1}..${oldest - 1} are no longer in the replay log; read GET /v1/sessions/${s.id}/messages`));
      this.cursor = oldest - 1;
      frames = s.log.since(this.cursor, s.seq) ?? [];
    }
    this.sendFrames(frames);
  }

  onDrain(): void {
    if (!this.paused || this.ws.getBufferedAmount() > this.highWater / 2) return;
    this.paused = false;
    // Not from inside uWS's drain callback: data sent there can stay in uWS's
    // buffer without the socket being polled for writing again (seen with
    // uWS.js v20.30; test/server/ws-resume.test.ts covers it).
    this.deliver();
  }
}

/** The message id of an invalid frame, when it has a usable one, to correlate the error. */
function idOf(decoded: unknown): string | undefined {
  if (decoded === null || typeof decoded !== 'object' || !Object.hasOwn(decoded, 'id')) return undefined;
  const id = (decoded as { id: unknown }).id;
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_ID_LENGTH ? id : undefined;
}

export class WsServer {
  readonly connections = new Set<Connection>();
  /** Frame counters by type, looked up once (they are bumped per frame). */
  readonly framesOut: Record<ServerFrameType, { value: number }>;
  private readonly framesIn: Record<ClientFrameType | 'invalid', { value: number }>;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private draining = false;
  private readonly log: Logger;

  constructor(readonly deps: WsDeps) {
    this.log = deps.logger.child({ subsystem: 'ws' });
    const cells = <T extends string>(direction: string, types: readonly T[]) =>
      Object.fromEntries(types.map((type) => [type, deps.metrics.wsFrames.cell({ direction, type })])) as Record<T, { value: number }>;
    this.framesOut = cells('out', SERVER_FRAME_TYPES);
    this.framesIn = cells('in', [...CLIENT_FRAME_TYPES, 'invalid'] as const);
  }

  register(app: TemplatedApp, path: string): void {
    const { limits, metrics } = this.deps;
    app.ws<UserData>(path, {
      // Messages up to 4x the frame limit are read and answered with
      // ERR_PROTOCOL_FRAME_TOO_LARGE; uWS closes the connection beyond that.
      maxPayloadLength: limits.maxFrameBytes * 4,
      maxBackpressure: limits.wsMaxBackpressureBytes,
      // Typed as a number in uWS's d.ts; the addon reads it as a boolean.
      closeOnBackpressureLimit: 1,
      // Our heartbeat check closes silent clients; uWS's idle timeout (which
      // also resets when the server sends) is only a backstop for dead peers.
      idleTimeout: Math.min(960, Math.max(8, Math.ceil((limits.idleTimeoutMs * 2) / 1000))),
      sendPingsAutomatically: false,
      upgrade: (res, req, context) => {
        const refuse = (code: 'ERR_CONNECTION_LIMIT' | 'ERR_SHUTTING_DOWN') => {
          const e = new NpcdError(code);
          res.cork(() => {
            res.writeStatus(statusLine(e.status)).writeHeader('Content-Type', 'application/json; charset=utf-8');
            res.end(JSON.stringify({ error: { code, message: e.message } }), true);
          });
          metrics.httpRequests.inc({ route: path, method: 'get', status_code: String(e.status) });
          metrics.httpFailed.inc({ route: path, reason: code });
        };
        if (this.draining) return refuse('ERR_SHUTTING_DOWN');
        if (this.connections.size >= limits.maxConnections) return refuse('ERR_CONNECTION_LIMIT');
        res.upgrade<UserData>(
          { conn: undefined },
          req.getHeader('sec-websocket-key'),
          req.getHeader('sec-websocket-protocol'),
          req.getHeader('sec-websocket-extensions'),
          context,
        );
        metrics.httpRequests.inc({ route: path, method: 'get', status_code: '101' });
      },
      open: (ws) => {
        const conn = new Connection(ws, this);
        ws.getUserData().conn = conn;
        this.connections.add(conn);
        metrics.wsOpened.inc();
        metrics.wsConnections.set(this.connections.size);
      },
      message: (ws, message, isBinary) => {
        const conn = ws.getUserData().conn;
        if (!conn) return;
        try {
          this.onMessage(conn, message, isBinary);
        } catch (err) {
          // A bug must cost one frame, not the process.
          this.internalError(conn, err);
        }
      },
      drain: (ws) => ws.getUserData().conn?.onDrain(),
      ping: (ws) => {
        const conn = ws.getUserData().conn;
        if (conn) conn.lastSeen = Date.now();
      },
      pong: (ws) => {
        const conn = ws.getUserData().conn;
        if (conn) conn.lastSeen = Date.now();
      },
      close: (ws) => {
        const conn = ws.getUserData().conn;
        if (!conn) return;
        conn.closed = true;
        conn.detach();
        this.connections.delete(conn);
        metrics.wsClosed.inc({ reason: conn.closeReason });
        metrics.wsConnections.set(this.connections.size);
      },
    });
    const every = Math.max(50, Math.min(1000, Math.floor(limits.idleTimeoutMs / 4)));
    this.heartbeatTimer = setInterval(() => this.checkHeartbeats(Date.now()), every);
    this.heartbeatTimer.unref();
  }

  private onMessage(conn: Connection, message: ArrayBuffer, isBinary: boolean): void {
    const { limits, metrics } = this.deps;
    conn.lastSeen = Date.now();
    conn.format = isBinary ? 'msgpack' : 'json';
    if (message.byteLength > limits.maxFrameBytes) {
      this.framesIn.invalid.value++;
      conn.sendError(new NpcdError('ERR_PROTOCOL_FRAME_TOO_LARGE', `message of ${message.byteLength} bytes exceeds the limit of ${limits.maxFrameBytes} bytes`));
      return;
    }
    let frame: ClientFrame;
    let decoded: unknown;
    try {
      decoded = this.deps.codec.decodeFrame(message, isBinary);
      frame = parseClientFrame(decoded, limits);
    } catch (err) {
      this.framesIn.invalid.value++;
      // A bug in decoding or validation is logged like any other.
      if (!(err instanceof NpcdError)) return this.internalError(conn, err);
      conn.sendError(err, idOf(decoded));
      return;
    }
    this.framesIn[frame.t].value++;
    if (conn.pending && frame.t !== 'ping') {
      if (conn.pending.length >= MAX_PENDING_FRAMES) {
        conn.sendError(new NpcdError('ERR_PROTOCOL_HELLO_REQUIRED', 'too many frames before welcome; wait for welcome'));
        return;
      }
      conn.pending.push(frame);
      return;
    }
    this.handle(conn, frame);
  }

  private handle(conn: Connection, frame: ClientFrame): void {
    switch (frame.t) {
      case 'ping':
        conn.sendControl({ t: 'pong', ts: frame.ts ?? Date.now() });
        return;
      case 'hello':
        if (conn.session) {
          conn.sendError(new NpcdError('ERR_PROTOCOL_DUPLICATE_HELLO', `this connection already has session ${conn.session.id}; open a new connection for another session`));
          return;
        }
        this.hello(conn, frame).catch((err: unknown) => this.internalError(conn, err));
        return;
      case 'chat':
        if (!conn.session) return conn.sendError(new NpcdError('ERR_PROTOCOL_HELLO_REQUIRED'), frame.id);
        this.chat(conn, conn.session, frame);
        return;
      case 'cancel':
        if (!conn.session) return conn.sendError(new NpcdError('ERR_PROTOCOL_HELLO_REQUIRED'), frame.id);
        if (!this.deps.engine.cancel(conn.session, frame.id)) {
          conn.sendError(new NpcdError('ERR_CHAT_NOT_ACTIVE', `message ${JSON.stringify(frame.id)} is not generating`), frame.id);
        }
        return;
    }
  }

  private chat(conn: Connection, session: Session, frame: ChatFrame): void {
    const { engine } = this.deps;
    try {
      // Refused after all (another node generates in the session): the sender alone hears it.
      engine.chat(session, { id: frame.id, character: frame.character, text: frame.text, trace: traceHeaders(frame.traceparent, frame.tracestate) }).accepted.catch((err: unknown) => conn.sendError(err, frame.id));
    } catch (err) {
      // A refused chat is part of the session's stream, so a client that
      // reconnects learns its fate on resume; with a shared store this node
      // may not number the session's frames, and answers the sender alone.
      const e = toNpcdError(err);
      if (e.code === 'ERR_INTERNAL') this.log.error({ err }, 'chat failed');
      if (engine.refusalsInStream) session.emit({ t: 'error', seq: 0, id: frame.id, code: e.code, message: e.message });
      else conn.sendError(e, frame.id);
    }
  }

  private async hello(conn: Connection, frame: HelloFrame): Promise<void> {
    const { engine, limits, metrics } = this.deps;
    if (limits.apiKeys.length > 0) {
      const problem = checkApiKey(limits.apiKeys, frame.token);
      if (problem) return conn.endWith(problem, 'auth');
    }
    conn.pending = [];
    let session: Session;
    try {
      ({ session } = await engine.open(frame.session));
    } catch (err) {
      conn.pending = undefined;
      const e = toNpcdError(err);
      if (e.code === 'ERR_SHUTTING_DOWN') return conn.endWith(e, 'shutdown');
      conn.sendError(e);
      return;
    }
    if (conn.closed) return;
    const previous = session.owner;
    if (previous instanceof Connection && previous !== conn) {
      previous.detach();
      previous.endWith(new NpcdError('ERR_SESSION_TAKEN_OVER', `another connection said hello for session ${session.id}`), 'taken_over');
    }
    const resume = frame.resume;
    const ahead = resume !== undefined && resume > session.seq;
    const gap = resume !== undefined && (ahead || !session.log.covers(resume, session.seq));
    if (resume !== undefined) metrics.resumes.inc({ result: gap ? 'gap' : 'replayed' });
    conn.batch = frame.batch === true && conn.format === 'msgpack';
    conn.ws.cork(() => {
      const welcome: WelcomeFrame = { t: 'welcome', session: session.id, seq: session.seq, heartbeat_ms: limits.heartbeatIntervalMs, resumed: resume !== undefined && !gap };
      if (conn.batch) welcome.batch = true;
      conn.sendControl(welcome);
      if (ahead) {
        // The client saw frames this session never had (e.g. an in-process session lost in a restart).
        conn.sendError(new NpcdError('ERR_RESUME_GAP', `resume ${resume} is ahead of this session's seq ${session.seq}; read GET /v1/sessions/${session.id}/messages`));
        conn.attach(session, session.seq);
      } else {
        // Replays frames after `resume`; when some are gone, catchUp reports the gap and goes on.
        conn.attach(session, resume ?? session.seq);
        conn.catchUp();
      }
    });
    const pending = conn.pending ?? [];
    conn.pending = undefined;
    for (const f of pending) {
      if (conn.closed) break;
      this.handle(conn, f);
    }
  }

  private internalError(conn: Connection, err: unknown): void {
    this.log.error({ err }, 'unexpected error handling a WebSocket frame');
    conn.sendError(new NpcdError('ERR_INTERNAL', 'internal error; the connection stays open'));
  }

  private checkHeartbeats(now: number): void {
    const { idleTimeoutMs: limit, helloTimeoutMs } = this.deps.limits;
    for (const conn of [...this.connections]) {
      // Pings keep a connection alive, but not one that never opens a session (it would hold a connection slot without a key).
      if (!conn.session && conn.pending === undefined && now - conn.openedAt > helloTimeoutMs) {
        conn.endWith(new NpcdError('ERR_HELLO_TIMEOUT', `no hello within ${helloTimeoutMs} ms of connecting`), 'hello_timeout');
      } else if (now - conn.lastSeen > limit) {
        conn.endWith(new NpcdError('ERR_HEARTBEAT_TIMEOUT', `no frame from the client for ${limit} ms; clients ping every ${this.deps.limits.heartbeatIntervalMs} ms`), 'heartbeat_timeout');
      }
    }
  }

  /** Refuses new connections from now on. */
  stopAccepting(): void {
    this.draining = true;
  }

  /** Closes every connection with 1001 and ERR_SHUTTING_DOWN. */
  closeAll(): void {
    for (const conn of [...this.connections]) conn.endWith(new NpcdError('ERR_SHUTTING_DOWN'), 'shutdown');
  }

  close(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }
}
