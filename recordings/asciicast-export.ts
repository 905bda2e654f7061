import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { StringDecoder } from 'node:string_decoder';
import { isHeader, readRecording } from './recording-reader.js';

/**
 * Writes asciicast v2 (what asciinema plays): a header line, then [time, code, data] lines.
 * Output and input go through separate UTF-8 decoders, so a character split across two chunks
 * is joined instead of mangled.
 */
export async function exportAsciicast(recordingFile: string, outFile: string, opts: { includeInput?: boolean } = {}): Promise<{ events: number }> {
  const out = createWriteStream(outFile, { mode: 0o640 });
  let events = 0;
  for await (const line of asciicastLines(recordingFile, opts)) {
    if (!out.write(line)) await once(out, 'drain');
    events += 1;
  }
  out.end();
  await once(out, 'finish');
  // The header line is not an event.
  return { events: Math.max(0, events - 1) };
}

/** The asciicast v2 lines of a recording, each ending in a newline, read block by block (the console's player streams them). */
export async function* asciicastLines(recordingFile: string, opts: { includeInput?: boolean } = {}): AsyncGenerator<string> {
  const decoders = { output: new StringDecoder('utf8'), input: new StringDecoder('utf8') };
  const seconds = (micros: number): number => Math.round(micros) / 1e6;
  const write = (line: string): string => `${line}\n`;
  for await (const item of readRecording(recordingFile)) {
    if (isHeader(item)) {
      const header: Record<string, unknown> = {
        version: 2,
        width: item.cols,
        height: item.rows,
        timestamp: Math.floor(item.startedAt / 1000),
        title: `${item.user} → ${item.device} (${item.kind}${item.command ? `: ${item.command}` : ''})`,
        env: { TERM: item.term ?? 'xterm-256color', SHELL: '/bin/sh' },
      };
      if (item.command) header.command = item.command;
      yield write(JSON.stringify(header));
      continue;
    }
    if (item.type === 'output' || item.type === 'input') {
      if (item.type === 'input' && !opts.includeInput) continue;
      const text = decoders[item.type].write(item.data);
      if (text.length === 0) continue;
      yield write(JSON.stringify([seconds(item.micros), item.type === 'output' ? 'o' : 'i', text]));
    } else if (item.type === 'resize') {
      yield write(JSON.stringify([seconds(item.micros), 'r', `${item.cols}x${item.rows}`]));
    }
  }
}
