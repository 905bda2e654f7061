import { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import type { ApiClient } from './api-client.js';

/** A WebSocket of the web console (terminal, watch), opened as a browser on this origin would, with the API client's cookie. */
export interface Socket {
  ws: WebSocket;
  /** Every binary frame so far, as text. */
  text: () => string;
  /** Every JSON control frame so far. */
  controls: Array<Record<string, unknown>>;
  closed: Promise<void>;
  waitFor(pred: () => boolean, timeoutMs?: number): Promise<void>;
}

export function openSocket(port: number, path: string, api: ApiClient, origin = `https://127.0.0.1:${port}`): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}${path}`, { headers: { cookie: api.cookie ?? '', origin }, rejectUnauthorized: false });
    let out = '';
    const controls: Array<Record<string, unknown>> = [];
    const closed = new Promise<void>((r) => ws.once('close', () => r()));
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) out += data.toString('utf8');
      else controls.push(JSON.parse(data.toString('utf8')) as Record<string, unknown>);
    });
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    ws.once('error', reject);
    ws.once('open', () => resolve({
      ws, text: () => out, controls, closed,
      waitFor: async (pred, timeoutMs = 30_000) => {
        const end = Date.now() + timeoutMs;
        while (!pred()) {
          if (Date.now() > end) throw new Error(`timed out; output so far: ${JSON.stringify(out.slice(-400))} controls: ${JSON.stringify(controls)}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      },
    }));
  });
}


/** A WebSocket's binary frames as a byte stream (what an RFB client reads and writes); text frames are kept aside as controls. */
export interface BinarySocket {
  ws: WebSocket;
  stream: Duplex;
  controls: Array<Record<string, unknown>>;
  closed: Promise<void>;
  waitFor(pred: () => boolean, timeoutMs?: number): Promise<void>;
}

/** Opens a desktop or a watch WebSocket of the web console as the browser would (the API client's cookie, this origin). */
export function openBinarySocket(port: number, path: string, api: ApiClient): Promise<BinarySocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}${path}`, { headers: { cookie: api.cookie ?? '', origin: `https://127.0.0.1:${port}` }, rejectUnauthorized: false });
    const controls: Array<Record<string, unknown>> = [];
    const stream = new Duplex({
      read() { /* pushed as frames arrive */ },
      write(chunk: Buffer, _enc, cb) {
        if (ws.readyState === ws.OPEN) ws.send(chunk, { binary: true }, cb);
        else cb();
      },
      final(cb) {
        ws.close();
        cb();
      },
      destroy(err, cb) {
        ws.close();
        cb(err);
      },
    });
    const closed = new Promise<void>((r) => ws.once('close', () => {
      stream.push(null);
      stream.destroy();
      r();
    }));
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) stream.push(data);
      else controls.push(JSON.parse(data.toString('utf8')) as Record<string, unknown>);
    });
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    ws.once('error', reject);
    ws.once('open', () => resolve({
      ws, stream, controls, closed,
      waitFor: async (pred, timeoutMs = 30_000) => {
        const end = Date.now() + timeoutMs;
        while (!pred()) {
          if (Date.now() > end) throw new Error(`timed out; controls: ${JSON.stringify(controls)}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      },
    }));
  });
}
