/**
 * `BENCH_ONLY=memory npm run bench`: the service's resident memory under many users. 100 000
 * handoffs (RS256, local store on tmpfs) over 10 000 users, RSS of the service process every 10 000,
 * next to its RSS when idle after start (the baseline). The service runs with the image's memory
 * settings (Dockerfile): a heap of half the container limit (--max-old-space-size-percentage=50, here
 * spelt out as 128 MiB for the chart's default 256 MiB, as this process has no cgroup limit), a small
 * young generation and two malloc arenas.
 */
import { readFileSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importJWK, type CryptoKey } from 'jose';
import { generateSigningKey } from '../src/handoff/keygen.js';
import { mintToken, randomSessionId } from '../src/handoff/mint.js';
import { startTarget } from './process.js';

/** Resident MiB of a process: all of it (VmRSS), and the anonymous part (RssAnon: heap and malloc, not the mapped node binary). */
function rss(pid: number): { total: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
  return { total: kb('VmRSS') / 1024, anon: kb('RssAnon') / 1024 };
}

export interface MemoryResult {
  idle: { total: number; anon: number };
  /** [handoffs so far, RSS MiB] */
  samples: [number, { total: number; anon: number }][];
  failures: number;
}

/** The node flags the image runs the service with (Dockerfile NODE_OPTIONS), with the 50 % heap share of a 256 MiB limit spelt out. */
export const IMAGE_NODE_FLAGS = ['--max-old-space-size=128', `--max-semi-space-size=${process.env.BENCH_SEMI ?? 4}`];
/** The image's allocator setting: two glibc arenas instead of one per thread. */
export const IMAGE_ENV = { MALLOC_ARENA_MAX: '2' };

export async function benchMemory(total = 100_000, users = 10_000, every = 10_000, concurrency = 16, nodeFlags = IMAGE_NODE_FLAGS): Promise<MemoryResult> {
  const dir = mkdtempSync(join(tmpdir(), 'oh-bench-mem-'));
  const dataDir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'oh-bench-mem-store-'));
  const key = await generateSigningKey('RS256');
  const signing = { alg: 'RS256' as const, kid: key.publicJwk.kid as string, key: (await importJWK(key.privateJwk, 'RS256')) as CryptoKey };
  const jwksFile = join(dir, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [key.publicJwk] }));
  const { child, port } = await startTarget('target.js', ['service', jwksFile, dataDir], nodeFlags, IMAGE_ENV);
  const pid = child.pid as number;
  const url = `http://127.0.0.1:${port}/handoff`;
  try {
    await new Promise((r) => setTimeout(r, 1000));
    const idle = rss(pid);
    const samples: MemoryResult['samples'] = [];
    let sent = 0;
    let failures = 0;
    const worker = async () => {
      for (;;) {
        const n = sent++;
        if (n >= total) return;
        const token = await mintToken(signing, {
          issuer: 'https://immerse.bench',
          audience: 'omnisci-handoff',
          subject: `user${n % users}`,
          typ: 'omnisci-handoff+jwt',
          lifetimeSeconds: 300,
          omnisci: { session: randomSessionId() },
        });
        const res = await fetch(url, {
          method: 'POST',
          redirect: 'manual',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ token }).toString(),
        });
        await res.arrayBuffer();
        if (res.status !== 303) failures++;
        if ((n + 1) % every === 0) samples.push([n + 1, rss(pid)]);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    samples.sort((a, b) => a[0] - b[0]);
    return { idle, samples, failures };
  } finally {
    child.kill();
    rmSync(dir, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
}
