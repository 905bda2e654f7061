import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';

const KEY_BYTES = 32;

/** Creates the master key file (mode 0600) if absent. The key never goes into the store. */
export function ensureMasterKey(file: string): boolean {
  if (existsSync(file)) return false;
  writeFileSync(file, `${randomBytes(KEY_BYTES).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  return true;
}

export function readMasterKey(file: string): Buffer {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the master key ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}); run \`portcullis init\``);
  }
  const mode = statSync(file).mode & 0o077;
  if (mode !== 0) throw new Error(`the master key ${file} is readable by group or others; chmod 600 it`);
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== KEY_BYTES) throw new Error(`the master key ${file} is not ${KEY_BYTES} bytes of base64`);
  return key;
}
