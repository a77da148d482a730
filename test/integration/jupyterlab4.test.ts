/**
 * The notebook side on today's Jupyter (jupyter/, omnisci-handoff-jupyter): its wheel installed into
 * jupyter_server 2 + JupyterLab 4 + ipykernel + pyheavydb (scripts/deps/jupyterlab4.sh), the server
 * started with exactly the session file, connection env vars and Jupyter config files the service
 * generates (src/notebook/outputs.ts) — which also switch on the legacy
 * jupyterlab_omnisci.serverextension, not installed here — and a HeavyDB stand-in that speaks
 * HeavyDB's wire protocol through pyheavydb's own generated Thrift code (scripts/demo/heavydb/).
 *
 * - GET {base_url}omnisci/session answers jupyterlab-omnisci's JSON, re-reads the file per request,
 *   and answers JSON errors with stable codes for a missing, empty or malformed file;
 * - Chromium opens /user/alice/lab?omnisci&reset: a notebook opens whose cells connect with the
 *   handed-over session (read by omnisci_handoff_jupyter.connect() in the kernel: no id in any cell
 *   or saved file) and run the handed-over SQL in a real kernel against the stand-in, which sees
 *   exactly that session and SQL — and never a `disconnect`, not even after the kernel and the
 *   server stopped. The test writes docs/images/jupyterlab4-notebook.png.
 *   (Following a new handoff, the status bar, waiting for a handoff: jupyterlab4-session.test.ts.)
 */
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { connectionEnv, jupyterConfigFiles, sessionFileContent } from '../../src/notebook/outputs.js';
import { launchChromium } from '../support/browser.js';
import { startHeavyDb, type HeavyCall, type HeavyDbStandIn } from '../../scripts/demo/heavydb/standin.js';
import { JLAB4_VENV, logInToLab, pageWaiter, replaceFile, runAllCells, type RunningJupyterServer, SERVICE_NOTEBOOK_DEFAULTS, startJupyterServer } from '../support/jupyterlab4.js';
import { writeTree } from '../support/notebook.js';
import { connectCellSource, pyString, queryCellSource } from '../../jupyter/src/notebook.mjs';
import { ROOT } from '../support/root.js';

jest.setTimeout(240_000);

type Connection = Parameters<typeof connectionEnv>[0];

const nbConfig = SERVICE_NOTEBOOK_DEFAULTS;
const LEGACY = 'jupyterlab_omnisci.serverextension';
/** A HeavyDB-like session id (32 alphanumerics): fixed for the browser test so the screenshot is stable. */
const BROWSER_SESSION = 'Xk3vQ9LmT2pR7sWc4NhB8yFd1GjZ6aUe';
/** SQL with everything a Python literal must escape: quotes, a backslash, a newline, non-ASCII. */
const BROWSER_QUERY = `SELECT carrier, AVG(arr_delay) AS "delay (min)"\nFROM flights WHERE origin = 'SFO' AND note <> 'a\\b' -- é`;

const newSession = () => randomBytes(16).toString('hex');
const sessions: string[] = [];
let dir: string;
let sessionFile: string;
let configDir: string;
let heavy: HeavyDbStandIn;
let server: RunningJupyterServer;
let browser: Browser | undefined;

/** Writes the session file as the store does: whole file replaced atomically. */
function handoff(session: string, query: string, format: 'json' | 'text' = 'json'): void {
  sessions.push(session);
  writeRaw(sessionFileContent({ session, query }, format));
}

function writeRaw(content: string | Buffer): void {
  replaceFile(sessionFile, content);
}

interface SessionAnswer {
  session: string;
  query: string;
  connection: Record<string, string>;
  environment: Record<string, string>;
}

async function answer(): Promise<{ status: number; contentType: string; body: unknown; text: string }> {
  const r = await server.get('omnisci/session');
  let body: unknown;
  try {
    body = JSON.parse(r.text);
  } catch {
    body = undefined;
  }
  return { status: r.status, contentType: r.contentType, body, text: r.text };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'oh-jl4-'));
  sessionFile = join(dir, 'session');
  heavy = await startHeavyDb();
  const connection = { protocol: heavy.protocol, host: heavy.host, port: heavy.port, database: '' } as Connection;
  // Exactly the generated files (the wheel switches its own server extension on, in its sys-prefix config).
  configDir = writeTree(jupyterConfigFiles(nbConfig, sessionFile), join(dir, 'jupyter-config'));
  server = await startJupyterServer({ configDir, env: connectionEnv(connection, nbConfig.env) });
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  await heavy?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('the HeavyDB stand-in speaks HeavyDB Thrift JSON over HTTP (sessions, expiry, roles)', async () => {
  const id = newSession();
  await heavy.addSession(id, { user: 'bob', database: 'flights_db', roles: ['analyst'], start_time: 1_700_000_000 });
  const info = await heavy.post(`[1,"get_session_info",1,0,{"1":{"str":"${id}"}}]`);
  expect(info.status).toBe(200);
  expect(JSON.parse(info.text)).toEqual([
    1,
    'get_session_info',
    2,
    0,
    { '0': { rec: { '1': { str: 'bob' }, '2': { str: 'flights_db' }, '3': { i64: 1_700_000_000 }, '4': { tf: 0 } } } },
  ]);
  const role = (grantee: string, name: string) =>
    heavy.post(`[1,"has_role",1,0,{"1":{"str":"${id}"},"2":{"str":"${grantee}"},"3":{"str":"${name}"}}]`).then((r) => JSON.parse(r.text) as unknown[]);
  expect((await role('bob', 'analyst'))[4]).toEqual({ '0': { tf: 1 } });
  expect((await role('bob', 'admin'))[4]).toEqual({ '0': { tf: 0 } });
  expect((await role('alice', 'analyst'))[4]).toEqual({ '1': { rec: { '1': { str: "Only super users can check other user's roles." } } } });
  await heavy.expireSession(id);
  const expired = JSON.parse((await heavy.post(`[1,"get_session_info",1,0,{"1":{"str":"${id}"}}]`)).text) as unknown[];
  expect(expired).toEqual([1, 'get_session_info', 2, 0, { '1': { rec: { '1': { str: 'Session not valid or expired.' } } } }]);
  const calls = await heavy.calls();
  expect(calls.map((c) => c.method)).toEqual(['get_session_info', 'has_role', 'has_role', 'has_role', 'get_session_info']);
  expect(calls[1]!.args).toEqual({ session: id, granteeName: 'bob', roleName: 'analyst' });
  await heavy.clearCalls();
});

test('jupyter_server 2 starts although the generated config also enables the legacy extension, which is not installed', async () => {
  const switches = JSON.parse(jupyterConfigFiles(nbConfig, sessionFile)['jupyter_server_config.d/omnisci-handoff.json']!) as {
    ServerApp: { jpserver_extensions: Record<string, boolean> };
  };
  expect(switches.ServerApp.jpserver_extensions[LEGACY]).toBe(true);
  expect(server.exitCode()).toBeNull();
  // A warning (with the ModuleNotFound traceback), then everything else loads.
  expect(server.log()).toContain(`${LEGACY} | error adding extension (enabled: True)`);
  expect(server.log()).toContain('omnisci_handoff_jupyter | extension was successfully loaded.');
  expect(server.log()).toContain('jupyterlab | extension was successfully loaded.');
});

test('…unless ServerApp.reraise_server_extension_failures is set: then the missing legacy extension stops the start', async () => {
  const strict = await startJupyterServer({ configDir, args: ['--ServerApp.reraise_server_extension_failures=True'], expectExit: true });
  try {
    expect(strict.exitCode()).not.toBe(0);
    expect(strict.exitCode()).not.toBeNull();
    expect(strict.log()).toContain(`The module '${LEGACY}' could not be found`);
  } finally {
    await strict.stop();
  }
});

test("GET /omnisci/session answers jupyterlab-omnisci's JSON: the handed-over session, query and connection", async () => {
  const session = newSession();
  handoff(session, 'SELECT 1');
  const r = await answer();
  expect(r.status).toBe(200);
  expect(r.contentType).toMatch(/^application\/json/);
  // Same keys, same order as jupyterlab-omnisci 3.0.0's OmniSciSessionManager.get_session().
  expect(Object.keys(r.body as object)).toEqual(['session', 'connection', 'environment', 'query']);
  expect(r.body).toEqual({
    session,
    connection: { protocol: 'http', host: '127.0.0.1', port: String(heavy.port) },
    environment: { protocol: 'OMNISCI_PROTOCOL', host: 'OMNISCI_HOST', port: 'OMNISCI_PORT' },
    query: 'SELECT 1',
  });
});

test('the endpoint needs the server token', async () => {
  const r = await server.get('omnisci/session', false);
  expect(r.status).toBe(403);
  expect(r.text).not.toContain(sessions.at(-1)!);
});

test('a second handoff (the file rewritten) is seen without a restart', async () => {
  const session = newSession();
  handoff(session, 'SELECT 2');
  const body = (await answer()).body as SessionAnswer;
  expect([body.session, body.query]).toEqual([session, 'SELECT 2']);
});

test('a plain-id session file (sessionFormat text) is read too', async () => {
  const session = newSession();
  handoff(session, 'ignored', 'text');
  const r = await answer();
  expect(r.status).toBe(200);
  expect([(r.body as SessionAnswer).session, (r.body as SessionAnswer).query]).toEqual([session, '']);
});

test('a missing, empty or malformed session file answers a JSON error with a stable code, not an HTML page', async () => {
  const secret = newSession();
  const cases: [string, () => void, number, string][] = [
    ['missing', () => rmSync(sessionFile, { force: true }), 404, 'no_session'],
    ['empty', () => writeRaw(''), 404, 'no_session'],
    ['empty session', () => writeRaw('{"session": "", "query": "SELECT 1"}\n'), 404, 'no_session'],
    ['broken JSON', () => writeRaw(`{"session": "${secret}", `), 500, 'session_malformed'],
    ['not an object', () => writeRaw(`["${secret}"]`), 500, 'session_malformed'],
    ['session not a string', () => writeRaw('{"session": 42}'), 500, 'session_malformed'],
    ['two words', () => writeRaw(`${secret} ${secret}\n`), 500, 'session_malformed'],
    ['binary', () => writeRaw(Buffer.from([0xff, 0xfe, 0x00])), 500, 'session_malformed'],
  ];
  for (const [what, setup, status, code] of cases) {
    setup();
    const r = await answer();
    expect({ what, status: r.status, type: r.contentType.split(';')[0], error: (r.body as { error?: string })?.error }).toEqual({
      what,
      status,
      type: 'application/json',
      error: code,
    });
    expect(Object.keys(r.body as object).sort()).toEqual(['error', 'message']);
    expect(r.text).not.toContain(secret);
    expect(r.text).not.toMatch(/<html|Traceback/i);
  }
});

test('the Python unit tests of the package pass (jupyter/tests, pytest)', async () => {
  const result = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn(join(JLAB4_VENV, 'bin/python'), ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'tests'], {
      cwd: join(ROOT, 'jupyter'),
      env: { PATH: '/usr/bin:/bin', PYTHONDONTWRITEBYTECODE: '1' },
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => resolve({ code, out }));
  });
  expect(result.out).toMatch(/\d+ passed/);
  expect(result).toMatchObject({ code: 0 });
});

/** Runs Python code in the venv with `input` as JSON on stdin; its stdout parsed as JSON. */
async function python(code: string, input: unknown): Promise<unknown> {
  const { exit, out, err } = await new Promise<{ exit: number | null; out: string; err: string }>((resolve) => {
    const child = spawn(join(JLAB4_VENV, 'bin/python'), ['-c', code], { env: { PATH: '/usr/bin:/bin' } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (c) => resolve({ exit: c, out, err }));
    child.stdin.end(JSON.stringify(input));
  });
  if (exit !== 0) throw new Error(`python failed (${exit}):\n${err}`);
  return JSON.parse(out) as unknown;
}

test('the generated cells are valid Python whose string literals are exactly the handed-over strings', async () => {
  const strings = [
    'SELECT 1',
    `SELECT "a b" FROM t\nWHERE x = 'y'`,
    'a"""b\nc',
    'x\n""""y',
    'ends with a quote\n"',
    'ends with two\n""',
    'ends with three\n"""',
    '"starts with one\nx',
    'back\\slash\n\\',
    'x\\\n"',
    '\\"""\n',
    "'''\n'''",
    '\\N{BULLET} \\u00e9 \\x41\n{x}',
    'tab\there\nnext',
    'é 中文 😀\nz',
    'windows\r\nline',
    '\u2028 separator\n',
    'nul \u0000\n',
    'lone \ud800 surrogate\n',
    '',
    '   ',
  ];
  const answers = strings.map((s) => ({ session: s || 'S', query: s, environment: { host: s || 'H', port: 'P', protocol: 'Q' } }));
  const evaluated = await python(
    [
      'import ast, json, sys',
      'data = json.load(sys.stdin)',
      'for cell in data["cells"]:',
      '    compile(cell, "cell", "exec")',
      'json.dump([ast.literal_eval(s) for s in data["literals"]], sys.stdout)',
    ].join('\n'),
    { literals: strings.map(pyString), cells: [connectCellSource(), ...answers.map(queryCellSource)] },
  );
  expect(evaluated).toEqual(strings);
  // Multi-line SQL reads as written (triple quotes); one line stays a plain literal.
  expect(pyString('SELECT "a"\nFROM t')).toBe('"""SELECT "a"\nFROM t"""');
  expect(pyString('SELECT 1')).toBe('"SELECT 1"');
});

interface SavedNotebook {
  cells: { cell_type: string; source: string | string[] }[];
  metadata: { kernelspec?: { name: string } };
}

const sourceOf = (cell: { source: string | string[] }) => (Array.isArray(cell.source) ? cell.source.join('') : cell.source);

test('Chromium on /lab?omnisci&reset: a notebook connects with the handed-over session and runs the handed-over SQL in a real kernel', async () => {
  await heavy.addSession(BROWSER_SESSION, { user: 'alice', database: 'heavyai', roles: ['immerse_user'] });
  await heavy.clearCalls();
  handoff(BROWSER_SESSION, BROWSER_QUERY);
  browser = await launchChromium();
  const page = await browser.newPage({ viewport: { width: 1280, height: 820 } });
  const consoleLines: string[] = [];
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  const waitFor = pageWaiter(page);
  await logInToLab(page, server);
  await page.goto(`${server.origin}${server.baseUrl}lab?omnisci&reset`);

  // The notebook opens on its own, its first cell the connect cell.
  const cells = page.locator('.jp-NotebookPanel .jp-Notebook .jp-Cell');
  await waitFor('the notebook', () => cells.nth(1).waitFor({ timeout: 90_000 }));
  const firstCell = await cells.nth(0).locator('.cm-content').innerText();
  expect(firstCell).toContain('from omnisci_handoff_jupyter import connect');
  expect(firstCell).not.toContain(BROWSER_SESSION);
  // omnisci (and reset, JupyterLab's) are gone from the address: a reload opens no second notebook.
  expect(new URL(page.url()).search).toBe('');

  // The saved notebook: connect cell (env names from the answer), then the query cell.
  const listing = (await server.api('GET', 'contents')).json as { content: { name: string; path: string; type: string }[] };
  const notebooks = listing.content.filter((f) => f.type === 'notebook');
  expect(notebooks.map((f) => f.name)).toEqual(['Untitled.ipynb']);
  const saved = ((await server.api('GET', `contents/${encodeURIComponent(notebooks[0]!.path)}`)).json as { content: SavedNotebook }).content;
  expect(saved.metadata.kernelspec?.name).toBe('python3');
  expect(saved.cells.map((c) => c.cell_type)).toEqual(['code', 'code']);
  const [connectCell, queryCell] = saved.cells.map(sourceOf) as [string, string];
  expect(connectCell).toContain('from omnisci_handoff_jupyter import connect\n\ncon = connect()');
  expect(connectCell).toMatch(/do not disconnect it yourself/);
  expect(connectCell).not.toMatch(/^\s*con\.close\(|disconnect\(con|_client\.disconnect\(/m);
  expect(JSON.stringify(saved)).not.toContain(BROWSER_SESSION);
  expect(queryCell).toContain('cursor = con.execute(query)');

  // Once the kernel is up, run both cells in it (Run > Run All Cells), as a user would.
  await runAllCells(page, waitFor);
  const output = cells.nth(1).locator('.jp-OutputArea-output').last();
  await waitFor('the query output', () => output.filter({ hasText: "'AA'" }).waitFor({ timeout: 120_000 }));
  const outputs = await cells.nth(1).locator('.jp-OutputArea').innerText();
  expect(outputs).toContain("['id', 'carrier', 'delay_minutes']");
  expect(outputs).toContain("(1, 'AA', 12.5)");
  expect(outputs).toContain("(3, 'UA', 41.25)");
  expect(await cells.nth(0).locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').count()).toBe(0);

  // The stand-in saw the handed-over session and exactly the handed-over SQL — and no disconnect.
  // (get_session_info: connect()'s check before pyheavydb's, and the status bar's checks.)
  const calls = await heavy.calls();
  const bySession = (c: HeavyCall) => c.args['session'] === undefined || c.args['session'] === BROWSER_SESSION;
  expect(calls.every(bySession)).toBe(true);
  const kernelCalls = calls.filter((c) => c.method !== 'get_session_info');
  expect(kernelCalls.map((c) => c.method)).toEqual(['get_tables', 'get_version', 'sql_execute']);
  expect(calls.findIndex((c) => c.method === 'get_session_info')).toBeLessThan(calls.findIndex((c) => c.method === 'get_tables'));
  expect(kernelCalls[2]!.args).toMatchObject({ session: BROWSER_SESSION, query: BROWSER_QUERY, column_format: true });

  await page.locator('#jp-main-dock-panel').screenshot({ path: join(ROOT, 'docs/images/jupyterlab4-notebook.png') });
  expect(consoleLines.filter((l) => l.startsWith('error:') && /omnisci/i.test(l))).toEqual([]);
  await page.close();
});

test('without a session, ?omnisci says so in the lab (the server\'s message) and opens no notebook', async () => {
  rmSync(sessionFile, { force: true });
  const page = await browser!.newPage({ viewport: { width: 1280, height: 820 } });
  await logInToLab(page, server);
  await page.goto(`${server.origin}${server.baseUrl}lab?omnisci&reset`);
  const dialog = page.locator('.jp-Dialog');
  await dialog.waitFor({ timeout: 90_000 });
  expect(await dialog.innerText()).toContain('No session has been handed over to this server');
  const listing = (await server.api('GET', 'contents')).json as { content: { type: string }[] };
  expect(listing.content.filter((f) => f.type === 'notebook')).toHaveLength(1);
  await page.close();
});

test('nothing ever called disconnect — not the notebook, nor the kernel or the server shutting down; no session id in the server log', async () => {
  const kernels = (await server.api('GET', 'kernels')).json as { id: string }[];
  expect(kernels.length).toBeGreaterThan(0);
  for (const k of kernels) expect((await server.api('DELETE', `kernels/${k.id}`)).status).toBe(204);
  await server.stop();
  const calls = await heavy.calls();
  expect(calls.filter((c) => c.method === 'disconnect')).toEqual([]);
  expect(calls.some((c) => c.method === 'sql_execute')).toBe(true);
  for (const s of [...sessions, BROWSER_SESSION]) expect(server.log()).not.toContain(s);
});
