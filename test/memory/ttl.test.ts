import t from 'tap';
import { INTENT_WEIGHT_S, MAX_TTL_S, MIN_TTL_S, laterExpiry, sessionTtlSeconds } from '../../src/memory/ttl.js';

t.test('the constants', async (t) => {
  t.equal(MIN_TTL_S, 300);
  t.equal(MAX_TTL_S, 86_400);
  t.equal(INTENT_WEIGHT_S, 3_600);
});

t.test('session_ttl * 2 + intent_weight * 3600 inside the bounds', async (t) => {
  t.equal(sessionTtlSeconds(1_800, 0), 3_600, 'the default --session-ttl (30 min), an ordinary write');
  t.equal(sessionTtlSeconds(1_800, 1), 7_200, 'an important one adds an hour');
  t.equal(sessionTtlSeconds(1_800, 0.5), 5_400);
  t.equal(sessionTtlSeconds(600, 0.25), 2_100);
});

t.test('clamped to [300 s, 86400 s]', async (t) => {
  t.equal(sessionTtlSeconds(0, 0), 300, 'nothing: the minimum');
  t.equal(sessionTtlSeconds(1, 0), 300);
  t.equal(sessionTtlSeconds(149, 0), 300, 'just under the minimum');
  t.equal(sessionTtlSeconds(150, 0), 300, 'exactly the minimum');
  t.equal(sessionTtlSeconds(151, 0), 302, 'just above it');
  t.equal(sessionTtlSeconds(0, 0.05), 300, 'a small weight alone stays at the minimum');
  t.equal(sessionTtlSeconds(0, 1), 3_600, 'the weight alone');
  t.equal(sessionTtlSeconds(41_400, 1), 86_400, 'exactly the maximum');
  t.equal(sessionTtlSeconds(41_401, 1), 86_400, 'just above it');
  t.equal(sessionTtlSeconds(43_199, 0), 86_398, 'just under it');
  t.equal(sessionTtlSeconds(30 * 86_400, 1), 86_400, 'the largest --session-ttl');
  t.equal(sessionTtlSeconds(Infinity, 0), 86_400);
});

t.test('integer seconds, rounded up', async (t) => {
  t.equal(sessionTtlSeconds(1_000.2, 0), 2_001);
  t.equal(sessionTtlSeconds(1_000, 0.0001), 2_001, 'a fraction of a second rounds up');
  for (const [s, w] of [[0.5, 0.3], [777.7, 0.123], [12_345.6, 0.99]] as const) {
    t.ok(Number.isInteger(sessionTtlSeconds(s, w)), `${s}, ${w}`);
  }
});

t.test('out-of-range and NaN inputs', async (t) => {
  t.equal(sessionTtlSeconds(1_800, 2), 7_200, 'weight above 1 counts as 1');
  t.equal(sessionTtlSeconds(1_800, -1), 3_600, 'weight below 0 counts as 0');
  t.equal(sessionTtlSeconds(1_800, NaN), 3_600, 'weight NaN counts as 0');
  t.equal(sessionTtlSeconds(1_800, Infinity), 7_200);
  t.equal(sessionTtlSeconds(1_800, -Infinity), 3_600);
  t.equal(sessionTtlSeconds(NaN, 1), 3_600, 'session ttl NaN counts as 0');
  t.equal(sessionTtlSeconds(-5_000, 0.5), 1_800, 'a negative session ttl counts as 0');
  t.equal(sessionTtlSeconds(NaN, NaN), 300);
});

t.test('expiry never shortens', async (t) => {
  t.equal(laterExpiry(undefined, 1_000, 300), 301_000, 'a first write');
  t.equal(laterExpiry(301_000, 2_000, 300), 302_000, 'a later write extends it');
  t.equal(laterExpiry(10_000_000, 2_000, 300), 10_000_000, 'a shorter TTL keeps the longer expiry');
  t.equal(laterExpiry(302_000, 2_000, 300), 302_000, 'equal');
});
