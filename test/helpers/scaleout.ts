/** Helpers of the scale-out tests: npcd nodes on a shared Redis, and checks of the stream they share. */
import type { Test } from 'tap';
import { startCli, type ServerProcess } from './child.js';
import { getJson } from './server.js';
import type { Frame } from './ws-client.js';

/** Long enough replies to kill a node in the middle of one: 400 tokens, 10 ms apart. */
export const NODE_ARGS = ['--model', 'mock', '--mock-tokens', '400', '--mock-token-delay', '10ms', '--generation-lease', '1s', '--orphan-grace', '30s', '--log-level', 'info'];

export async function node(t: Test, redisUrl: string): Promise<ServerProcess> {
  return startCli(t, [...NODE_ARGS, '--redis', redisUrl]);
}

export const wsUrl = (n: ServerProcess) => `ws://127.0.0.1:${n.port}/v1/ws`;

/** Seqs of stream frames must run 1, 2, 3, … with none twice and none missing. */
export function checkSeqs(t: Test, frames: Frame[], from: number, what: string): void {
  const seqs = frames.map((f) => f.seq as number);
  const expected = seqs.map((_, i) => from + i);
  t.same(seqs, expected, `${what}: seqs ${from}..${from + seqs.length - 1}, each once, none missing`);
}

export async function messages(n: ServerProcess, session: string): Promise<{ role: string; id: string; text: string }[]> {
  const r = await getJson(`http://127.0.0.1:${n.port}/v1/sessions/${session}/messages`);
  if (r.status !== 200) throw new Error(`messages: ${r.status} ${JSON.stringify(r.body)}`);
  return (r.body as { messages: { role: string; id: string; text: string }[] }).messages;
}
