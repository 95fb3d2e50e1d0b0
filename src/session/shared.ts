/**
 * What a node does when sessions are shared with other nodes through the
 * store (Redis): stream frames are stored before any client sees them, so
 * whatever a client saw can be replayed by any node; a reply is generated
 * under a lease, so other nodes can tell a live reply from one whose node
 * died; a node that serves a session while another node generates its reply
 * follows the stored stream until the reply ends.
 */
import { NpcdError } from '../errors.js';
import type { Logger } from '../log.js';
import type { GenerationLease, MemoryStore } from '../memory/store.js';
import type { StreamFrame } from '../protocol/types.js';
import type { FrameSink, Session } from './session.js';

/**
 * Batches the frames each session emits within one event-loop turn into one
 * store write (a burst of tokens is one XADD pipeline), writes a session's
 * batches in order, and publishes them once written. A failed write is
 * logged and the frames are published anyway: the node's own clients keep
 * their stream while the store is down; only a resume on another node can
 * miss them (it reports ERR_RESUME_GAP).
 */
export class FramePersister implements FrameSink {
  private readonly batches = new Map<Session, StreamFrame[]>();
  private readonly tails = new Map<Session, Promise<void>>();
  private scheduled = false;

  constructor(
    private readonly store: MemoryStore,
    private readonly maxFrames: number,
    private readonly ttlOf: (session: Session) => number,
    private readonly log: Logger,
    private readonly onError: () => void,
  ) {}

  write(session: Session, frame: StreamFrame): void {
    let batch = this.batches.get(session);
    if (!batch) this.batches.set(session, (batch = []));
    batch.push(frame);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    for (const [session, frames] of this.batches) this.chain(session, frames);
    this.batches.clear();
  };

  private chain(session: Session, frames: StreamFrame[]): void {
    const last = frames[frames.length - 1]!.seq;
    const previous = this.tails.get(session) ?? Promise.resolve();
    const tail = previous
      .then(() => this.store.appendFrames(session.id, frames, this.maxFrames, this.ttlOf(session)))
      .catch((err: unknown) => {
        this.onError();
        this.log.warn({ err, session: session.id, frames: frames.length }, 'could not store stream frames; sending them anyway');
      })
      .then(() => {
        session.publish(last);
        if (this.tails.get(session) === tail) this.tails.delete(session);
      });
    this.tails.set(session, tail);
  }

  /** Settles when every frame the session emitted so far is stored (or failed) and published. */
  async settled(session: Session): Promise<void> {
    if (this.batches.has(session)) {
      // Still in this turn's batch: write it now rather than wait for the tick.
      this.chain(session, this.batches.get(session)!);
      this.batches.delete(session);
    }
    await this.tails.get(session);
  }
}

/** True for the frame that ends reply `id`. */
export function endsReply(frame: StreamFrame, id: string): boolean {
  return (frame.t === 'done' || frame.t === 'error') && frame.id === id;
}

/**
 * The reply a stream leaves open: the id of its last `start` frame when no
 * `done`/`error` for that id follows it.
 */
export function openReply(frames: readonly StreamFrame[]): { id: string; character: string; startSeq: number } | undefined {
  for (let i = frames.length - 1; i >= 0; i--) {
    const f = frames[i]!;
    if ((f.t === 'done' || f.t === 'error') && f.id !== undefined) return undefined;
    if (f.t === 'start') return { id: f.id, character: f.character, startSeq: f.seq };
  }
  return undefined;
}

/**
 * Renews a generation lease every third of its time while the reply runs.
 * Losing it to another node (it took the lease after it expired: this node
 * was cut off from Redis for longer than the lease) aborts the reply with
 * ERR_GENERATION_INTERRUPTED, since the other node has ended it already.
 * A lease that is simply gone (Redis restarted without its data, or the
 * lease expired while Redis was unreachable and no node took it) is taken
 * again, and the reply goes on, unless the stored stream shows that another
 * node ended the reply meanwhile. A renewal that fails because Redis is down
 * keeps the reply going.
 */
export function keepLease(
  store: MemoryStore,
  session: string,
  lease: GenerationLease,
  leaseMs: number,
  controller: AbortController,
  log: Logger,
): () => void {
  const lost = () => {
    if (controller.signal.aborted) return;
    log.warn({ session, id: lease.id }, 'lost the generation lease: another node ended this reply');
    controller.abort(new NpcdError('ERR_GENERATION_INTERRUPTED', 'this node lost the reply to another node (its lease expired)'));
  };
  let renewing = false;
  const timer = setInterval(() => {
    if (renewing) return;
    renewing = true;
    renew(store, session, lease, leaseMs, log)
      .then((held) => (held ? undefined : lost()), (err: unknown) => log.warn({ err, session, id: lease.id }, 'could not renew the generation lease'))
      .finally(() => (renewing = false));
  }, Math.max(50, Math.floor(leaseMs / 3)));
  timer.unref();
  return () => clearInterval(timer);
}

/** One renewal: true while this node holds the lease (renewed, or taken again after it lapsed). */
async function renew(store: MemoryStore, session: string, lease: GenerationLease, leaseMs: number, log: Logger): Promise<boolean> {
  if (await store.renewGeneration(session, lease, leaseMs)) return true;
  if ((await store.generation(session)) !== undefined) return false;
  // Gone, and nobody holds it: take it again. Under the lease nobody else can end the reply,
  // so the stream read after taking it says whether someone did before.
  if (!(await store.claimGeneration(session, lease, leaseMs))) return false;
  const { frames } = await store.framesSince(session, lease.startSeq);
  if (frames.some((f) => (f.t === 'done' || f.t === 'error') && f.id === lease.id)) {
    await store.releaseGeneration(session, lease);
    return false;
  }
  log.warn({ session, id: lease.id }, 'the generation lease was gone (Redis lost it); taken again, the reply goes on');
  return true;
}
