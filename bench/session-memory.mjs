#!/usr/bin/env node
// Heap held per session after it has chatted: N sessions × T turns through the
// real session engine (mock provider, 16 tokens per reply), measured after a
// full GC. Needs the build (dist/) and --expose-gc:
//   node --expose-gc bench/session-memory.mjs [--sessions 1000] [--turns 170]
//        [--replay-frames 512] [--history 200]
import { benchArgs } from './lib/args.mjs';
import { CharacterRegistry } from '../dist/characters/registry.js';
import { BUNDLED_CHARACTERS } from '../dist/config/serve.js';
import { silentLogger } from '../dist/log.js';
import { Metrics } from '../dist/metrics/metrics.js';
import { MockProvider } from '../dist/providers/mock.js';
import { SessionEngine } from '../dist/session/engine.js';
import { InProcessMemoryStore } from '../dist/memory/in-process.js';

const values = benchArgs(
  {
    sessions: { type: 'string', default: '1000' },
    turns: { type: 'string', default: '170' },
    'replay-frames': { type: 'string', default: '512' },
    history: { type: 'string', default: '200' },
  },
  `Usage: node --expose-gc bench/session-memory.mjs [options]

  --sessions N        sessions (default 1000)
  --turns T           turns per session (default 170)
  --replay-frames N   replay log per session (default 512)
  --history N         messages kept per session (default 200)
  -h, --help

Heap held per session after chatting (bench/README.md, "session-memory.mjs").
Needs npm run build.`,
);
if (typeof globalThis.gc !== 'function') {
  console.error('run with node --expose-gc');
  process.exit(2);
}
const sessions = Number(values.sessions);
const turns = Number(values.turns);
const registry = new CharacterRegistry();
registry.loadDirectory(BUNDLED_CHARACTERS);
const engine = new SessionEngine({
  store: new InProcessMemoryStore({ budgetBytes: 64 * 1024 * 1024 * 1024 }),
  registry,
  provider: new MockProvider({ tokens: 16, ttftMs: 0, tokenDelayMs: 0 }),
  metrics: new Metrics({ defaultMetrics: false }),
  logger: silentLogger,
  limits: {
    maxSessions: sessions + 1,
    maxReplyTokens: 256,
    maxHistoryTurns: Number(values.history),
    replayFrames: Number(values['replay-frames']),
    replayRetentionMs: 3_600_000,
    sessionTtlMs: 3_600_000,
    scriptTokenDelayMs: 0,
  },
});
globalThis.gc();
const before = process.memoryUsage().heapUsed;
for (let s = 0; s < sessions; s++) {
  const { session } = await engine.open(`bench-${s}`);
  for (let i = 0; i < turns; i++) {
    await engine.chat(session, { id: `m${i}`, character: 'gufeng-jianke', text: `bench message ${i}` }).finished;
  }
}
globalThis.gc();
const after = process.memoryUsage();
const perSession = (after.heapUsed - before) / sessions;
console.log(JSON.stringify({
  sessions, turns, replayFrames: Number(values['replay-frames']), history: Number(values.history),
  heapPerSessionKiB: Math.round(perSession / 102.4) / 10,
  heapUsedMiB: Math.round(after.heapUsed / 1048576), rssMiB: Math.round(after.rss / 1048576),
}));
engine.close();
