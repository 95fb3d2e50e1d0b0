/**
 * The in-process session store (the embedded default). Data lives only as
 * long as the process. It keeps its own records (turns are immutable and
 * shared by reference), so it behaves like an external store would.
 */
import type { SessionData, SessionStore, Turn } from './types.js';

function copy(data: SessionData): SessionData {
  return { ...data, states: { ...data.states }, turns: [...data.turns] };
}

export class MemorySessionStore implements SessionStore {
  readonly kind = 'memory';
  private readonly sessions = new Map<string, SessionData>();

  get size(): number {
    return this.sessions.size;
  }

  async load(id: string): Promise<SessionData | undefined> {
    const data = this.sessions.get(id);
    return data && copy(data);
  }

  async save(data: SessionData): Promise<void> {
    const existing = this.sessions.get(data.id);
    this.sessions.set(data.id, { ...data, states: { ...data.states }, turns: existing?.turns ?? [...data.turns] });
  }

  async appendTurns(id: string, turns: readonly Turn[], maxTurns: number): Promise<void> {
    const data = this.sessions.get(id);
    if (!data) return;
    data.turns.push(...turns);
    if (data.turns.length > maxTurns) data.turns.splice(0, data.turns.length - maxTurns);
  }

  async delete(id: string): Promise<void> {
    this.sessions.delete(id);
  }
}
