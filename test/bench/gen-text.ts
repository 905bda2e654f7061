/** Child process of run.ts: writes the text data set, so its garbage never inflates the gateway's RSS. */
import { writeTextFile } from './bench-lib.js';

const [file, bytes] = process.argv.slice(2);
if (!file || !bytes) throw new Error('usage: gen-text.ts FILE BYTES');
writeTextFile(file, Number(bytes));
