/**
 * The demo hub's jupyterhub_config.py: JupyterHub 5 on 127.0.0.1 with omnisci-handoff as a hub
 * service, the shipped forced-login authenticator (helm/omnisci-handoff/files/authenticator.py: the
 * browser is logged in with the one-time login token the service issues), and single-user servers
 * as local processes of this account, given the session by the shipped spawner hook
 * (contrib/jupyterhub/omnisci_handoff_hook.py) from the service's local store.
 */
import { join } from 'node:path';

export interface HubConfigOptions {
  root: string;
  /** The hub's own directory (database, cookie secret, pid file). */
  hubDir: string;
  /** Where the users' homes are made: <homes>/<name>. */
  homes: string;
  publicPort: number;
  hubPort: number;
  proxyApiPort: number;
  /** node and configurable-http-proxy's script. */
  node: string;
  chp: string;
  /** The service's local store (store.local.dir). */
  storeDir: string;
  service: { name: string; port: number; apiToken: string };
  /** The single-user servers: their venv, whether it is the classic notebook server, extra env and arguments. */
  server: { venv: string; classic: boolean; env: Record<string, string>; args: string[] };
  /** Whether the hub runs as root (the servers then need --allow-root). */
  asRoot: boolean;
  proxyAuthToken: string;
}

const py = (v: unknown) => JSON.stringify(v);

export function hubConfig(o: HubConfigOptions): string {
  const { server } = o;
  // jupyterlab-omnisci 3.0.0 runs on the classic notebook server; JupyterLab 4 on jupyter_server 2 (the default app).
  const env = { ...(server.classic ? { JUPYTERHUB_SINGLEUSER_APP: 'notebook.notebookapp.NotebookApp' } : {}), PYTHONWARNINGS: 'ignore', ...server.env };
  const args = [...(o.asRoot ? ['--allow-root'] : []), ...server.args];
  return `# Written by scripts/demo.ts on every run.
import sys
c = get_config()
c.JupyterHub.ip = '127.0.0.1'
c.JupyterHub.port = ${o.publicPort}
c.JupyterHub.hub_ip = '127.0.0.1'
c.JupyterHub.hub_port = ${o.hubPort}
c.JupyterHub.db_url = ${py(`sqlite:///${join(o.hubDir, 'jupyterhub.sqlite')}`)}
c.JupyterHub.cookie_secret_file = ${py(join(o.hubDir, 'cookie_secret'))}
c.JupyterHub.pid_file = ${py(join(o.hubDir, 'jupyterhub.pid'))}
c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:${o.proxyApiPort}'
c.ConfigurableHTTPProxy.command = [${py(o.node)}, ${py(o.chp)}]
c.ConfigurableHTTPProxy.auth_token = ${py(o.proxyAuthToken)}

# Login: the one-time login token omnisci-handoff issues (hub.loginMode handoff), traded at the service.
sys.path.insert(0, ${py(join(o.root, 'helm/omnisci-handoff/files'))})
from authenticator import OmnisciHandoffAuthenticator
c.JupyterHub.authenticator_class = OmnisciHandoffAuthenticator

# Servers: local processes of this account, with the session from the service's local store.
sys.path.insert(0, ${py(join(o.root, 'contrib/jupyterhub'))})
from omnisci_handoff_hook import OmnisciHandoffHook
c.Spawner.pre_spawn_hook = OmnisciHandoffHook(${py(o.storeDir)})
c.JupyterHub.spawner_class = 'simple'
c.SimpleLocalProcessSpawner.home_dir_template = ${py(join(o.homes, '{username}'))}
c.Spawner.ip = '127.0.0.1'
c.Spawner.cmd = [${py(join(server.venv, 'bin/jupyterhub-singleuser'))}]
c.Spawner.args = ${py(args)}
c.Spawner.default_url = '/lab'
c.Spawner.environment = ${py(env)}
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120

c.JupyterHub.services = [{'name': ${py(o.service.name)}, 'url': 'http://127.0.0.1:${o.service.port}', 'api_token': ${py(o.service.apiToken)}, 'oauth_no_confirm': True, 'display': False}]
c.JupyterHub.load_roles = [{'name': ${py(o.service.name)}, 'scopes': ['servers', 'admin:users', 'read:shares'], 'services': [${py(o.service.name)}]}]
`;
}
