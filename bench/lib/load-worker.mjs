// One load-generating process: opens a share of the connections and drives
// closed-loop chat (or echo) turns on each of them. Controlled through
// handleCommand() either in-process or over the fork() IPC channel.

import { performance, monitorEventLoopDelay } from 'node:perf_hooks';
import { WsConn, parseWsUrl } from './ws-client.mjs';
import { scanFrame, idEqualsStr, scannedId, encodeChatPrefix, encodeHello, encodePing } from './msgpack-scan.mjs';
import { encodeFrame, encodePrefixedStrFrame, OP_BINARY } from './ws-client.mjs';
import { Histogram } from './histogram.mjs';

const LOOP_RES_MS = 5;
const excess = (ns) => Math.max(0, ns / 1e6 - LOOP_RES_MS);

function inc(obj, key, n = 1) { obj[key] = (obj[key] || 0) + n; }

export class LoadWorker {
  /**
   * cfg: { url, mode: 'chat'|'echo', connections, indexOffset, sourceAddrs: string[],
   *        character, text, rampConcurrency, connectTimeoutMs, helloTimeoutMs,
   *        turnTimeoutMs, errorBackoffMs, workerIndex }
   */
  constructor(cfg) {
    this.cfg = cfg;
    this.target = parseWsUrl(cfg.url);
    this.prefix = encodeChatPrefix(cfg.character, cfg.text);
    this.helloFrame = encodeFrame(OP_BINARY, encodeHello());
    this.conns = [];
    this.running = false;
    this.measuring = false;
    this.closingAll = false;
    this.sc = { t: null, idPos: -1, idLen: 0, idNum: NaN, seq: NaN, code: null };
    this.resetStats();
    this.totals = { disconnects: 0, closeCodes: {}, turnTimeouts: 0 };
    this.timer = null;
    this.loopDelay = monitorEventLoopDelay({ resolution: LOOP_RES_MS });
  }

  resetStats() {
    this.stats = {
      turns: 0, tokens: 0, frames: 0, bytes: 0, sent: 0,
      errors: {}, anomalies: {},
      ttft: new Histogram(), turn: new Histogram(),
    };
  }

  anomaly(key) { inc(this.stats.anomalies, key); }

  // ---- ramp-up --------------------------------------------------------------

  async connectAll() {
    const cfg = this.cfg;
    const n = cfg.connections;
    const failures = {};
    const helloHist = new Histogram();
    let next = 0, ok = 0;
    const t0 = performance.now();
    const openOne = async (i) => {
      const gi = cfg.indexOffset + i;
      const localAddress = cfg.sourceAddrs.length ? cfg.sourceAddrs[gi % cfg.sourceAddrs.length] : undefined;
      const c = {
        gi, ws: new WsConn(), n: 0, id: '', idBase: 'c' + gi.toString(36) + '-',
        sentAt: 0, firstTok: 0, tokens: 0, gotStart: false, waiting: false, stalled: false,
        lastSeq: -Infinity, helloResolve: null, session: null,
      };
      c.ws.onmessage = cfg.mode === 'echo'
        ? (b, s, e) => this.onEchoMessage(c, b, s, e)
        : (b, s, e) => this.onChatMessage(c, b, s, e);
      c.ws.onclose = (code) => this.onClose(c, code);
      try {
        await c.ws.connect({ ...this.target, localAddress, timeoutMs: cfg.connectTimeoutMs });
        if (cfg.mode === 'chat') {
          const th = performance.now();
          await new Promise((resolve, reject) => {
            const to = setTimeout(() => { const e = new Error('no welcome'); e.code = 'HELLO_TIMEOUT'; reject(e); }, cfg.helloTimeoutMs);
            c.helloResolve = (err) => { clearTimeout(to); c.helloResolve = null; err ? reject(err) : resolve(); };
            c.ws.writeRaw(this.helloFrame);
          });
          helloHist.record((performance.now() - th) * 1000);
        }
        this.conns.push(c);
        ok++;
      } catch (err) {
        inc(failures, err.code || err.message);
        c.ws.onclose = null;
        c.ws.destroy();
      }
    };
    const runner = async () => {
      while (next < n) { const i = next++; await openOne(i); }
    };
    const k = Math.max(1, Math.min(cfg.rampConcurrency, n));
    await Promise.all(Array.from({ length: k }, runner));
    const rampMs = performance.now() - t0;
    this.timer = setInterval(() => this.checkTimeouts(), 1000);
    this.timer.unref();
    return { connected: ok, failed: n - ok, failures, rampMs, hello: helloHist.toJSON() };
  }

  // ---- turn loop ------------------------------------------------------------

  start() {
    this.running = true;
    for (const c of this.conns) if (!c.waiting) this.send(c);
  }

  send(c) {
    if (!this.running || !c.ws.isOpen) { c.waiting = false; return; }
    c.n++;
    c.id = c.idBase + c.n.toString(36);
    const frame = encodePrefixedStrFrame(this.prefix, c.id);
    c.firstTok = 0; c.tokens = 0; c.gotStart = false; c.stalled = false;
    c.waiting = true;
    c.sentAt = performance.now();
    c.ws.writeRaw(frame);
    if (this.measuring) this.stats.sent++;
  }

  afterError(c) {
    c.waiting = false;
    const ms = this.cfg.errorBackoffMs;
    if (ms > 0) setTimeout(() => this.send(c), ms);
    else this.send(c);
  }

  onChatMessage(c, buf, s, e) {
    const st = this.stats;
    const m = this.measuring;
    if (m) { st.frames++; st.bytes += e - s; }
    const sc = this.sc;
    if (!scanFrame(buf, s, e, sc)) { this.anomaly('undecodable_frame'); return; }
    if (!Number.isNaN(sc.seq)) {
      if (sc.seq <= c.lastSeq) this.anomaly('seq_not_increasing');
      c.lastSeq = sc.seq;
    }
    switch (sc.t) {
      case 'token':
        if (!c.waiting || !idEqualsStr(buf, sc, c.id)) { this.anomaly('token_for_other_id'); return; }
        if (c.firstTok === 0) {
          c.firstTok = performance.now();
          if (!c.gotStart) this.anomaly('token_before_start');
          if (m) st.ttft.record((c.firstTok - c.sentAt) * 1000);
        }
        c.tokens++;
        return;
      case 'start':
        if (!c.waiting || !idEqualsStr(buf, sc, c.id)) { this.anomaly('start_for_other_id'); return; }
        c.gotStart = true;
        return;
      case 'done': {
        if (!c.waiting || !idEqualsStr(buf, sc, c.id)) { this.anomaly('done_for_other_id'); return; }
        const now = performance.now();
        if (c.firstTok === 0) this.anomaly('done_without_token');
        if (m) {
          st.turns++;
          st.tokens += c.tokens;
          st.turn.record((now - c.sentAt) * 1000);
        }
        c.waiting = false;
        this.send(c);
        return;
      }
      case 'error': {
        const code = sc.code || 'unknown';
        if (c.waiting && idEqualsStr(buf, sc, c.id)) {
          if (m) inc(st.errors, code);
          this.afterError(c);
        } else {
          const id = scannedId(buf, sc);
          inc(st.errors, id === null ? code + ' (no id)' : code + ' (other id)');
        }
        return;
      }
      case 'welcome':
        if (c.helloResolve) { c.session = 'x'; c.helloResolve(null); } else this.anomaly('unexpected_welcome');
        return;
      case 'pong':
        return;
      default:
        this.anomaly('unknown_t:' + String(sc.t).slice(0, 20));
    }
  }

  onEchoMessage(c, buf, s, e) {
    const st = this.stats;
    const m = this.measuring;
    if (m) { st.frames++; st.bytes += e - s; }
    const sc = this.sc;
    if (!scanFrame(buf, s, e, sc)) { this.anomaly('undecodable_frame'); return; }
    if (!c.waiting || !idEqualsStr(buf, sc, c.id)) { this.anomaly('reply_for_other_id'); return; }
    if (m) {
      const us = (performance.now() - c.sentAt) * 1000;
      st.turns++;
      st.ttft.record(us);
      st.turn.record(us);
    }
    c.waiting = false;
    this.send(c);
  }

  onClose(c, code) {
    c.waiting = false;
    if (c.helloResolve) { const e = new Error('closed before welcome'); e.code = 'CLOSED_' + code; c.helloResolve(e); }
    if (this.closingAll) return;
    this.totals.disconnects++;
    inc(this.totals.closeCodes, String(code));
  }

  checkTimeouts() {
    if (!this.running) return;
    const now = performance.now();
    const lim = this.cfg.turnTimeoutMs;
    for (const c of this.conns) {
      if (c.waiting && !c.stalled && now - c.sentAt > lim) {
        c.stalled = true;
        this.totals.turnTimeouts++;
        // keep the connection alive while we wait for a late reply
        if (c.ws.isOpen) c.ws.writeRaw(encodeFrame(OP_BINARY, encodePing(Date.now())));
      }
    }
  }

  // ---- measurement window -----------------------------------------------------

  beginMeasure() {
    this.resetStats();
    this.loopDelay.reset();
    this.loopDelay.enable();
    this.cpu0 = process.cpuUsage();
    this.t0 = performance.now();
    this.measuring = true;
  }

  endMeasure() {
    this.measuring = false;
    const windowMs = performance.now() - this.t0;
    const cpu = process.cpuUsage(this.cpu0);
    this.loopDelay.disable();
    this.running = false;
    const ld = this.loopDelay;
    const st = this.stats;
    let open = 0, waiting = 0;
    for (const c of this.conns) { if (c.ws.isOpen) open++; if (c.waiting) waiting++; }
    return {
      worker: this.cfg.workerIndex,
      windowMs,
      turns: st.turns, tokens: st.tokens, frames: st.frames, bytes: st.bytes, sent: st.sent,
      errors: st.errors, anomalies: st.anomalies,
      ttft: st.ttft.toJSON(), turn: st.turn.toJSON(),
      cpuUserUs: cpu.user, cpuSystemUs: cpu.system,
      // the histogram includes the sampling interval itself; report only the excess
      loopDelayMs: { p50: excess(ld.percentile(50)), p99: excess(ld.percentile(99)), max: excess(ld.max) },
      disconnects: this.totals.disconnects, closeCodes: this.totals.closeCodes, turnTimeouts: this.totals.turnTimeouts,
      openAtEnd: open, inFlightAtEnd: waiting,
    };
  }

  async closeAll(timeoutMs = 3000) {
    this.closingAll = true;
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    const pending = [];
    for (const c of this.conns) {
      if (c.ws.state === 'closed') continue;
      pending.push(new Promise((r) => c.ws.socket.once('close', r)));
      c.ws.close(1000, '', timeoutMs);
    }
    await Promise.race([Promise.all(pending), new Promise((r) => setTimeout(r, timeoutMs + 500))]);
    for (const c of this.conns) c.ws.destroy();
    return { closed: pending.length };
  }
}

/** Command dispatcher shared by the in-process and forked variants. */
export async function handleCommand(state, msg) {
  switch (msg.cmd) {
    case 'init': state.worker = new LoadWorker(msg.cfg); return { ok: true };
    case 'connect': return state.worker.connectAll();
    case 'go': state.worker.start(); return { ok: true };
    case 'measure': state.worker.beginMeasure(); return { ok: true };
    case 'stop': return state.worker.endMeasure();
    case 'close': return state.worker.closeAll();
    default: throw new Error('unknown command ' + msg.cmd);
  }
}
