/**
 * zero-to-jupyterhub for the tests that install its real chart (test/node/z2jh.test.ts): where the
 * pinned copy of its chart and image recipes lives (`../shared/z2jh` beside the checkout, or
 * OMNISCI_Z2JH_DIR), and the images of a z2jh deployment built here without a registry, each from
 * its own recipe:
 * - z2jh's hub image: its own Dockerfile and frozen requirements, unchanged (`--target slim-stage`,
 *   published upstream as k8s-hub-slim), its `FROM python:3.14-*` names mapped to local stand-ins
 *   (scripts/images/python-standin.Containerfile: Debian bookworm's Python 3.11; see there why);
 * - configurable-http-proxy's image from its npm package (scripts/images/configurable-http-proxy.Containerfile);
 * - ours: the service image (Dockerfile), the notebook 6 + jupyterlab-omnisci 3.0.0 single-user image
 *   (images/singleuser) and the JupyterLab 4 one with omnisci-handoff-jupyter (images/singleuser-jupyterlab4).
 * podman's layer cache makes a warm build take seconds.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BASE_IMAGES, build, ensureBaseImages, type Built } from '../system/podman.js';
import { ROOT } from './root.js';

export const Z2JH_DIR = process.env.OMNISCI_Z2JH_DIR ?? join(ROOT, '..', 'shared', 'z2jh');
export const Z2JH_CHART = join(Z2JH_DIR, 'jupyterhub');

/** Why the z2jh copy cannot be used, or undefined. */
export function z2jhMissing(): string | undefined {
  for (const f of ['jupyterhub/Chart.yaml', 'images/hub/Dockerfile', 'images/hub/requirements.txt'])
    if (!existsSync(join(Z2JH_DIR, f))) return `${join(Z2JH_DIR, f)} not found (the pinned z2jh copy: ../shared/z2jh beside the checkout, or OMNISCI_Z2JH_DIR)`;
  return undefined;
}

/** The chart's appVersion (the JupyterHub version of its hub image). */
export function z2jhAppVersion(): string {
  return /^appVersion:\s*"?([^"\s]+)"?/m.exec(readFileSync(join(Z2JH_CHART, 'Chart.yaml'), 'utf8'))![1]!;
}

const CHP_VERSION = (JSON.parse(readFileSync(join(ROOT, 'node_modules/configurable-http-proxy/package.json'), 'utf8')) as { version: string }).version;
const repo = 'localhost/omnisci-handoff-test';
export const Z2JH_IMAGES = {
  hub: `${repo}/k8s-hub-slim:z2jh`,
  chp: `${repo}/configurable-http-proxy:${CHP_VERSION}`,
  service: `${repo}/service:z2jh`,
  notebook6: `${repo}/singleuser:z2jh`,
  jupyterlab4: `${repo}/singleuser-jupyterlab4:z2jh`,
} as const;
export type Z2jhImage = keyof typeof Z2JH_IMAGES;
const STANDIN = { build: `${repo}/python-standin:build`, slim: `${repo}/python-standin:slim` };

/** Builds every image (sequentially: 2 cores); the JupyterLab 4 wheel must be in .cache/jlab4-dist (scripts/deps/jupyterlab4.sh). */
export async function buildZ2jhImages(): Promise<Record<Z2jhImage, Built>> {
  await ensureBaseImages();
  const standin = (target: 'build' | 'slim') => build({
    tag: STANDIN[target], context: join(ROOT, 'scripts/images'), file: join(ROOT, 'scripts/images/python-standin.Containerfile'),
    target, args: { BASE: BASE_IMAGES.debian },
  });
  await standin('build');
  await standin('slim');
  const wheels = join(ROOT, '.cache/jlab4-dist');
  if (!existsSync(join(wheels, 'omnisci_handoff_jupyter-0.1.0-py3-none-any.whl'))) throw new Error(`no omnisci-handoff-jupyter wheel in ${wheels}: bash scripts/deps/jupyterlab4.sh`);
  return {
    hub: await build({
      tag: Z2JH_IMAGES.hub, context: join(Z2JH_DIR, 'images/hub'), file: join(Z2JH_DIR, 'images/hub/Dockerfile'), target: 'slim-stage',
      from: { 'python:3.14-trixie': STANDIN.build, 'python:3.14-slim-trixie': STANDIN.slim },
    }),
    chp: await build({
      tag: Z2JH_IMAGES.chp, context: join(ROOT, 'scripts/images'), file: join(ROOT, 'scripts/images/configurable-http-proxy.Containerfile'),
      args: { BASE: BASE_IMAGES.node, CHP_VERSION },
    }),
    service: await build({ tag: Z2JH_IMAGES.service, context: ROOT, args: { BASE: BASE_IMAGES.node } }),
    notebook6: await build({ tag: Z2JH_IMAGES.notebook6, context: ROOT, file: join(ROOT, 'images/singleuser/Containerfile'), args: { BASE: BASE_IMAGES.debian } }),
    jupyterlab4: await build({
      tag: Z2JH_IMAGES.jupyterlab4, context: wheels, file: join(ROOT, 'images/singleuser-jupyterlab4/Containerfile'), args: { BASE: BASE_IMAGES.debian },
    }),
  };
}

/** `name:tag` split as z2jh's image values want it. */
export function imageValue(ref: string, pullPolicy = 'Never'): { name: string; tag: string; pullPolicy: string } {
  const i = ref.lastIndexOf(':');
  return { name: ref.slice(0, i), tag: ref.slice(i + 1), pullPolicy };
}
