/**
 * Header mode's notebook side on today's Jupyter (jupyter_server 2 + JupyterLab 4, .cache/venv-jlab4),
 * with exactly the config files and env the service generates for notebook.allowHidden and
 * notebook.envFamilies: the HEAVY.AI web server's own write of ~/.jupyterscratch/.omniscisession
 * (its request body, byte for byte) succeeds, and both stock readers find the session and the
 * connection: omnisci_connect() (.omniscisession, OMNISCI_*) and heavyai_connect() (.heavyaisession,
 * HEAVYAI_*), as heavyai-olio reads them, connecting with pyheavydb to the HeavyDB stand-in.
 * Without allowHidden, jupyter_server refuses that write.
 */
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomSessionId } from '../../src/handoff/mint.js';
import { jupyterConfigFiles, notebookEnv } from '../../src/notebook/outputs.js';
import { testConfig } from '../support/core.js';
import { startHeavyDb, type HeavyDbStandIn } from '../../scripts/demo/heavydb/standin.js';
import { JLAB4_VENV, startJupyterServer, type RunningJupyterServer } from '../support/jupyterlab4.js';
import { writeTree } from '../support/notebook.js';

jest.setTimeout(120_000);

/** The web server's PUT body (webserver: jupyterSessionFileTemplateText). */
const webServerWrite = (session: string) => ({ name: '.omniscisession', path: '.omniscisession', type: 'file', format: 'text', content: `{"session": "${session}"}` });
const PATH = 'contents/.jupyterscratch/.omniscisession';

let dir: string;
let heavy: HeavyDbStandIn;
const servers: RunningJupyterServer[] = [];

async function server(allowHidden: boolean) {
  const nb = testConfig({ notebook: { envFamilies: ['OMNISCI', 'HEAVYAI'], allowHidden } }).notebook;
  const configDir = writeTree(jupyterConfigFiles(nb, join(dir, 'session')), mkdtempSync(join(dir, 'cfg-')));
  const env = notebookEnv({ protocol: heavy.protocol, host: heavy.host, port: heavy.port, database: 'heavyai' }, nb);
  const s = await startJupyterServer({ configDir, env });
  servers.push(s);
  return { s, env };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'oh-hnb-'));
  heavy = await startHeavyDb();
});

afterAll(async () => {
  for (const s of servers) await s.stop();
  await heavy?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('without notebook.allowHidden jupyter_server 2 refuses the web server\'s write', async () => {
  const { s } = await server(false);
  const put = await s.api('PUT', PATH, webServerWrite(randomSessionId()));
  expect(put.status).toBeGreaterThanOrEqual(400);
});

test('with it: the write succeeds, and omnisci_connect() and heavyai_connect() both connect with that session', async () => {
  const { s, env } = await server(true);
  const scratch = join(s.home, '.jupyterscratch');
  expect(statSync(scratch).mode & 0o777).toBe(0o700);
  expect(lstatSync(join(scratch, '.heavyaisession')).isSymbolicLink()).toBe(true);
  expect(readlinkSync(join(scratch, '.heavyaisession'))).toBe('.omniscisession');

  const session = randomSessionId();
  await heavy.addSession(session, { user: 'alice' });
  expect((await s.api('PUT', PATH, webServerWrite(session))).status).toBe(201);
  // A second write (the next notebook from Immerse) replaces it.
  expect((await s.api('PUT', PATH, webServerWrite(session))).status).toBe(200);

  // What each stock helper does (heavyai-olio's connect_session), up to pyheavydb's connect.
  const reader = `
import json, os, sys
from pathlib import Path
import heavydb
family, name = sys.argv[1], sys.argv[2]
sid = json.loads(open(f"{Path.home()}/.jupyterscratch/{name}").read()).get("session", "invalid")
con = heavydb.connect(sessionid=sid, host=os.environ[f"{family}_HOST"], port=int(os.environ[f"{family}_PORT"]), protocol=os.environ[f"{family}_PROTOCOL"])
print(json.dumps(len(con.execute("SELECT 1").fetchall())))
`;
  await heavy.clearCalls();
  for (const [family, name] of [['OMNISCI', '.omniscisession'], ['HEAVYAI', '.heavyaisession']] as const) {
    const out = execFileSync(join(JLAB4_VENV, 'bin/python'), ['-c', reader, family, name], {
      env: { ...env, HOME: s.home, PATH: '/usr/bin:/bin', PYTHONWARNINGS: 'ignore' },
      encoding: 'utf8',
    });
    expect(JSON.parse(out)).toBe(3);
  }
  const calls = await heavy.calls();
  expect(calls.filter((c) => c.method === 'sql_execute').map((c) => (c.args as { session: string }).session)).toEqual([session, session]);
});
