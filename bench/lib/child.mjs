// Running a bench script as a child process and reading its JSON result
// (the relay runners' client, the sidecar overhead bench's loads).
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Runs a Node.js script from the repository root and resolves when it exits:
 * its exit code, the JSON of its last stdout line (null when that is not
 * JSON) and the end of its stderr. Killed after `timeoutS`.
 */
export function runJsonChild(script, args, timeoutS) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const limit = setTimeout(() => child.kill('SIGKILL'), timeoutS * 1000);
    child.on('exit', (code) => {
      clearTimeout(limit);
      let json = null;
      try { json = JSON.parse(out.trim().split('\n').pop()); } catch { /* not JSON: null */ }
      resolve({ code, json, stderr: err.slice(-2000) });
    });
  });
}
