// Preloaded (node -r) into npcd by scripts/profile.mjs for `clinic doctor`
// and `clinic bubbleprof`. Their samplers flush what they collected only on
// 'beforeExit' (a process that ends by itself), but npcd ends with
// process.exit() after its graceful shutdown (src/signals.ts), which would
// cut their data file mid-record ("Decoded message is not valid"). So
// process.exit first emits 'beforeExit'; the sampler then closes its file
// and calls process.exit() itself, which goes through.
'use strict';
const exit = process.exit;
let flushing = false;
process.exit = function flushThenExit(code) {
  if (flushing || process.listenerCount('beforeExit') === 0) return exit.call(process, code);
  flushing = true;
  if (code !== undefined) process.exitCode = code;
  process.emit('beforeExit', process.exitCode ?? 0);
  // If no listener exits within 20 s (a big bubbleprof log takes a few), exit anyway.
  setTimeout(() => exit.call(process, code), 20_000);
};
