/** Debian's Chromium driven by playwright-core (no browser downloads; scripts/deps/chromium.sh installs it). Each launch gets a fresh temporary profile. */
import { chromium, type Browser, type LaunchOptions } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** `options.proxy`: every request of the browser through that HTTP proxy (test/node/system.test.ts: into the one-node cluster). */
export function launchChromium(options: Pick<LaunchOptions, 'proxy'> = {}): Promise<Browser> {
  return chromium.launch({
    ...options,
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
