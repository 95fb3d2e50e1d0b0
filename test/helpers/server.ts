/** Starts an npcd server on a free loopback port for one test, closed in teardown. */
import type { Test } from 'tap';
import { loadServeConfig, type ServeConfig } from '../../src/config/serve.js';
import { CharacterRegistry } from '../../src/characters/registry.js';
import { startServer, type NpcdServer, type ServerParts } from '../../src/server/app.js';

export interface TestServer {
  server: NpcdServer;
  config: ServeConfig;
  http: string;
  ws: string;
}

/**
 * Starts a server. Unless the test asks for `watch: true` (the parse worker
 * pool and hot reload), characters are loaded inline, which keeps the many
 * short-lived test servers fast.
 */
export async function testServer(t: Test, overrides: Partial<ServeConfig> = {}, parts: ServerParts = {}): Promise<TestServer> {
  const { config } = loadServeConfig([], {}, { host: '127.0.0.1', port: 0, scriptTokenDelayMs: 0, shutdownTimeoutMs: 2000, watch: false, ...overrides });
  if (!config.watch && !parts.registry) {
    const registry = new CharacterRegistry();
    registry.loadDirectory(config.characters);
    parts = { ...parts, registry };
  }
  const server = await startServer(config, parts);
  t.teardown(() => server.shutdown(0));
  return { server, config, http: `http://127.0.0.1:${server.port}`, ws: `ws://127.0.0.1:${server.port}/v1/ws` };
}

export interface JsonResponse {
  status: number;
  /** The parsed JSON body, or the text when it is not JSON (e.g. SSE). */
  body: any;
  headers: Headers;
}

async function request(url: string, init: RequestInit): Promise<JsonResponse> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body, headers: res.headers };
}

export function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonResponse> {
  return request(url, {
    method: 'POST',
    body: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...headers },
  });
}

export function getJson(url: string, headers: Record<string, string> = {}): Promise<JsonResponse> {
  return request(url, { headers });
}

/** Parses an SSE body into events. */
export function parseSse(text: string): { id?: number; event: string; data: any }[] {
  return text
    .split('\n\n')
    .filter((block) => block.trim() !== '')
    .map((block) => {
      const ev: { id?: number; event: string; data: any } = { event: 'message', data: undefined };
      for (const line of block.split('\n')) {
        const i = line.indexOf(': ');
        const key = line.slice(0, i);
        const value = line.slice(i + 2);
        if (key === 'id') ev.id = Number(value);
        else if (key === 'event') ev.event = value;
        else if (key === 'data') ev.data = JSON.parse(value);
      }
      return ev;
    });
}
