/**
 * The demo's output: numbered steps, each ending "— ready (1.2 s)" or "— failed". On a terminal a
 * step's line counts its seconds and shows what a long step is doing now; elsewhere (a log, a test)
 * what it is doing comes as indented lines, and a line every 30 s says it is still working.
 */

let total = 0;
/** How many steps this run has (the numbering's "/n"). */
export function plan(steps: number): void {
  total = steps;
}

export const out = (s: string) => void process.stdout.write(s);
export const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const tty = process.stdout.isTTY === true;

/** A step that failed in a way the message explains; `logFile` holds the failing process's output. */
export class StepFailed extends Error {
  readonly logFile: string | undefined;
  constructor(message: string, logFile?: string) {
    super(message);
    this.logFile = logFile;
  }
}

export interface Progress {
  /** The step's state, shown after its title ("installed", "first run: installing …"). */
  note(s: string): void;
  /** What the step is doing now (a long step's latest line of output). */
  doing(s: string): void;
}

let stepNo = 0;

export async function step<T>(title: string, work: (progress: Progress) => Promise<T>): Promise<T> {
  const n = ++stepNo;
  const started = Date.now();
  let noted = '';
  let now = '';
  // Off a terminal: whether lines were printed under the step's first line (its end then gets a line of its own).
  let below = false;
  const head = () => `[${n}/${total}] ${title} …${noted ? ` ${noted}` : ''}`;
  const line = () => {
    const s = `${head()}${now ? ` ${now}` : ''} ${Math.round((Date.now() - started) / 1000)} s`;
    const width = process.stdout.columns ?? 120;
    return `\r\x1b[K${s.length > width - 1 ? `${s.slice(0, width - 2)}…` : s}`;
  };
  out(head());
  const ticker = setInterval(() => {
    const s = Math.round((Date.now() - started) / 1000);
    if (tty) out(line());
    else if (s % 30 === 0) {
      out(`\n    … still working (${s} s)`);
      below = true;
    }
  }, 1000);
  const end = (how: string) => {
    clearInterval(ticker);
    if (tty) out(`\r\x1b[K${head()} — ${how}\n`);
    else out(below ? `\n[${n}/${total}] ${title} — ${how}\n` : ` — ${how}\n`);
  };
  try {
    const result = await work({
      note(s) {
        noted = s;
        if (tty) out(line());
        else if (below) out(`\n    ${s}`);
        else out(` ${s}`);
      },
      doing(s) {
        now = s;
        if (tty) out(line());
        else {
          out(`\n    ${s}`);
          below = true;
        }
      },
    });
    end(`ready (${seconds(Date.now() - started)})`);
    return result;
  } catch (e) {
    end('failed');
    throw e;
  }
}
