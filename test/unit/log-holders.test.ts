/**
 * killLogHolders (test/support/process.ts): what a stopped peer left running in a session of its own,
 * still writing to its log, is killed.
 */
import { expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killLogHolders } from '../support/process.js';

/** Running: not gone and not a zombie (a killed orphan waits for init to reap it). */
const running = (pid: number) => existsSync(`/proc/${pid}/stat`) && !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));

test('a grandchild in a session of its own that writes to the log is killed; others are left alone', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'holders-'));
  const log = join(dir, 'peer.log');
  const fd = openSync(log, 'a');
  // setsid: out of the child's process group, as the hub's servers are.
  const child = spawn('sh', ['-c', 'setsid sleep 300 & echo $!'], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const bystander = spawn('sleep', ['300'], { stdio: 'ignore' });
  try {
    await once(child, 'exit');
    const grandchild = Number(readFileSync(log, 'utf8').trim());
    expect(running(grandchild)).toBe(true);

    killLogHolders(log);
    for (let i = 0; running(grandchild) && i < 100; i++) await new Promise((r) => setTimeout(r, 20));
    expect(running(grandchild)).toBe(false);
    expect(running(bystander.pid!)).toBe(true);
  } finally {
    bystander.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
