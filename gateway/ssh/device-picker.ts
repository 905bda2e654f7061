import type { ServerChannel } from 'ssh2';
import type { DeviceRecord } from '../store/store.js';

/**
 * Asks the user which granted device to open when they named none. Reads one line from the
 * channel with simple echo and backspace; resolves null when they quit (q, Ctrl-C, Ctrl-D).
 */
const PICKER_TIMEOUT_MS = 120_000;
const MAX_WRONG_CHOICES = 5;

export function pickDevice(channel: ServerChannel, user: string, devices: DeviceRecord[]): Promise<DeviceRecord | null> {
  const w = (s: string): void => {
    channel.write(s.replace(/\n/g, '\r\n'));
  };
  w(`Portcullis: signed in as ${user}.\n`);
  if (devices.length === 0) {
    w('You have no device you may open right now. Ask for an access grant.\n');
    return Promise.resolve(null);
  }
  w('Devices you may open now:\n');
  devices.forEach((d, i) => w(`  ${String(i + 1).padStart(2)}) ${d.name}${d.udi ? `  (UDI ${d.udi})` : ''}\n`));
  const prompt = `Choose a device [1-${devices.length}], or q to quit: `;
  w(prompt);
  return new Promise((resolve) => {
    let line = '';
    let wrong = 0;
    // Bounded: a picker left open, or fed endless wrong answers, ends instead of growing output.
    const timer = setTimeout(() => {
      w('\nNo choice made; closing.\n');
      done(null);
    }, PICKER_TIMEOUT_MS);
    const done = (d: DeviceRecord | null): void => {
      clearTimeout(timer);
      channel.removeListener('data', onData);
      channel.pause();
      resolve(d);
    };
    const onData = (chunk: Buffer): void => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\x03' || ch === '\x04') {
          w('\n');
          return done(null);
        }
        if (ch === '\r' || ch === '\n') {
          w('\n');
          const choice = line.trim();
          line = '';
          if (choice === 'q') return done(null);
          const byName = devices.find((d) => d.name === choice);
          const n = Number(choice);
          const picked = byName ?? (Number.isInteger(n) && n >= 1 && n <= devices.length ? devices[n - 1] : undefined);
          if (picked) return done(picked);
          wrong += 1;
          if (wrong >= MAX_WRONG_CHOICES) {
            w('Too many invalid choices; closing.\n');
            return done(null);
          }
          w(`No such choice.\n${prompt}`);
        } else if (ch === '\x7f' || ch === '\b') {
          if (line.length > 0) {
            line = line.slice(0, -1);
            w('\b \b');
          }
        } else if (ch >= ' ' && line.length < 64) {
          line += ch;
          w(ch);
        }
      }
    };
    channel.on('data', onData);
    channel.resume();
  });
}
