/**
 * Profiling on demand, for the admin token only (--admin-keys):
 *
 * - GET /debug/profile?seconds=N: a V8 CPU profile of N seconds (a
 *   `.cpuprofile` JSON document, which Chrome DevTools and speedscope open).
 *   Sampling runs inside V8; the event loop keeps serving meanwhile.
 * - GET /debug/heap: a V8 heap snapshot (`.heapsnapshot`). Taking it stops
 *   the process for as long as V8 walks the heap (about a second per few
 *   hundred MB); the chunks go to a temporary file and are then streamed to
 *   the client at the pace it reads (tryEnd + onWritable), so a slow client
 *   does not make npcd hold the whole snapshot in memory.
 *
 * One profile or snapshot at a time in the process: V8 has one profiler per
 * isolate, and two snapshots at once would double the pause and the disk.
 * A second request gets 409 ERR_PROFILE_BUSY. See docs/profiling.md.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { type FileHandle, mkdtemp, open, rm, stat } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NpcdError } from '../errors.js';
import type { Logger } from '../log.js';
import { requireAdmin } from './admin.js';
import type { HttpExchange } from './http.js';

export interface DebugDeps {
  readonly adminKeys: readonly string[];
  /** Longest CPU profile a request may ask for (--profile-max-seconds). */
  readonly profileMaxSeconds: number;
  readonly logger: Logger;
}

export const DEFAULT_PROFILE_SECONDS = 10;

/** Bytes read from the snapshot file and offered to uWS at a time. */
const STREAM_CHUNK_BYTES = 256 * 1024;

/** What holds the profiler now, process-wide (V8's profilers belong to the isolate, not to one server). */
let busy: string | undefined;

function acquire(what: string): () => void {
  if (busy !== undefined) throw new NpcdError('ERR_PROFILE_BUSY', `a ${busy} is being taken; one profile or heap snapshot at a time`);
  busy = what;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    busy = undefined;
  };
}

function secondsParam(query: string, max: number): number {
  const raw = new URLSearchParams(query).get('seconds');
  if (raw === null || raw === '') return Math.min(DEFAULT_PROFILE_SECONDS, max);
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1 || n > max) {
    throw new NpcdError('ERR_PROTOCOL_INVALID_FIELD', `query parameter "seconds" must be an integer from 1 to ${max} (--profile-max-seconds)`, { detail: { field: 'seconds' } });
  }
  return n;
}

function stamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-');
}

/** Resolves after `ms`, or at once when the client goes away. */
function waitOrAbort(x: HttpExchange, ms: number): Promise<void> {
  return new Promise((resolve) => {
    if (x.aborted) return resolve();
    // Unref'd: a profile in progress must not keep a stopping process alive.
    const timer = setTimeout(resolve, ms);
    timer.unref();
    x.onAbort(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** GET /debug/profile?seconds=N */
export async function cpuProfile(x: HttpExchange, deps: DebugDeps): Promise<void> {
  requireAdmin(x, deps.adminKeys);
  const seconds = secondsParam(x.query, deps.profileMaxSeconds);
  const release = acquire('CPU profile');
  const log = deps.logger.child({ subsystem: 'debug' });
  const session = new Session();
  try {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
    log.info({ seconds }, 'CPU profile started');
    await waitOrAbort(x, seconds * 1000);
    const { profile } = await session.post('Profiler.stop');
    if (x.aborted) {
      log.info('CPU profile abandoned: the client went away');
      return;
    }
    const body = JSON.stringify(profile);
    log.info({ seconds, bytes: body.length, samples: profile.samples?.length ?? 0 }, 'CPU profile taken');
    x.send(200, 'application/json; charset=utf-8', body, {
      'Content-Disposition': `attachment; filename="npcd-${stamp()}.cpuprofile"`,
      'Cache-Control': 'no-store',
    });
  } finally {
    // disconnect() also stops and disables the profiler if a post above failed.
    session.disconnect();
    release();
  }
}

/** GET /debug/heap */
export async function heapSnapshot(x: HttpExchange, deps: DebugDeps): Promise<void> {
  requireAdmin(x, deps.adminKeys);
  const release = acquire('heap snapshot');
  const log = deps.logger.child({ subsystem: 'debug' });
  let dir: string | undefined;
  try {
    dir = await mkdtemp(join(tmpdir(), 'npcd-heap-'));
    const file = join(dir, 'snapshot.heapsnapshot');
    if (x.aborted) return;
    const started = performance.now();
    await writeSnapshot(file);
    const { size } = await stat(file);
    log.info({ bytes: size, durationMs: Math.round(performance.now() - started) }, 'heap snapshot taken');
    if (x.aborted) return;
    try {
      await streamFile(x, file, size, {
        'Content-Type': 'application/json; charset=utf-8',
        'Content-Disposition': `attachment; filename="npcd-${stamp()}.heapsnapshot"`,
        'Cache-Control': 'no-store',
      });
    } catch (err) {
      // After the 200 went out an error cannot be a response any more: the
      // connection was closed (the client sees a short body), say why here.
      log.error({ err }, 'heap snapshot: streaming failed');
      return;
    }
    if (x.aborted) log.info('heap snapshot abandoned: the client went away');
  } finally {
    release();
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}

/**
 * HeapProfiler.takeHeapSnapshot into a file. V8 emits the chunks
 * synchronously while it walks the heap (the event loop is stopped for that
 * time anyway), so they are written with writeSync as they come.
 */
async function writeSnapshot(file: string): Promise<void> {
  const session = new Session();
  const fd = openSync(file, 'w');
  // A failed write (disk full) must not throw out of the event handler, where
  // it would be an uncaught exception: keep it and report it after.
  let failed: unknown;
  try {
    session.connect();
    session.on('HeapProfiler.addHeapSnapshotChunk', (m) => {
      if (failed !== undefined) return;
      try {
        writeSync(fd, m.params.chunk);
      } catch (err) {
        failed = err;
      }
    });
    await session.post('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
    if (failed !== undefined) throw new NpcdError('ERR_INTERNAL', `cannot write the heap snapshot to ${file}`, { cause: failed });
  } finally {
    session.disconnect();
    closeSync(fd);
  }
}

/**
 * Streams a file as the response body with Content-Length, at the pace the
 * client reads: tryEnd offers a chunk, and when uWS cannot take all of it the
 * rest is offered again from onWritable (the pattern of uWS's VideoStreamer
 * example). One chunk is in memory at a time.
 */
async function streamFile(x: HttpExchange, file: string, size: number, headers: Record<string, string>): Promise<void> {
  const fh = await open(file, 'r');
  try {
    if (x.aborted) return;
    x.beginStream(headers);
    try {
      await streamChunks(x, fh, size);
    } catch (err) {
      if (!x.finished) {
        x.ended(500, 'ERR_INTERNAL');
        x.res.close();
      }
      throw err;
    }
  } finally {
    await fh.close();
  }
}

/** Offers the file to uWS one chunk at a time; the next chunk is read once uWS took the last one whole. */
async function streamChunks(x: HttpExchange, fh: FileHandle, size: number): Promise<void> {
  let wake: (() => void) | undefined;
  x.onAbort(() => wake?.());
  const buf = Buffer.allocUnsafe(STREAM_CHUNK_BYTES);
  let position = 0;
  let done = false;
  while (!done && !x.aborted) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - position), position);
    if (x.aborted) return;
    if (bytesRead === 0) throw new NpcdError('ERR_INTERNAL', `heap snapshot file ended at ${position} of ${size} bytes`);
    position += bytesRead;
    const chunk = buf.subarray(0, bytesRead);
    done = await new Promise<boolean>((resolve) => {
      wake = () => resolve(true);
      x.res.cork(() => {
        const start = x.res.getWriteOffset();
        const [ok, finished] = x.res.tryEnd(chunk, size);
        if (ok || finished) return resolve(finished);
        // uWS took part of the chunk; offer the rest when the socket drains.
        x.res.onWritable((offset) => {
          const [ok2, finished2] = x.res.tryEnd(chunk.subarray(offset - start), size);
          if (ok2 || finished2) resolve(finished2);
          return ok2;
        });
      });
    });
    wake = undefined;
  }
  if (!x.aborted) x.ended(200);
}
