import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import { mirrorInlineStyles } from './csp-style-mirror.js';

/** Loaded with import() by the pages with a terminal only: xterm.js is most of their weight. */
export interface MountedTerminal {
  term: Terminal;
  fit(): void;
  dispose(): void;
}

export interface MountOptions {
  readOnly: boolean;
  /** Called after every fit that changed the size (window resize, sidebar, zoom). */
  onResize?: (cols: number, rows: number) => void;
  ariaLabel: string;
}

export function mountTerminal(container: HTMLElement, opts: MountOptions): MountedTerminal {
  const term = new Terminal({
    cursorBlink: !opts.readOnly,
    disableStdin: opts.readOnly,
    convertEol: false,
    fontFamily: '"DejaVu Sans Mono", "Noto Sans Mono CJK SC", Menlo, Consolas, monospace',
    fontSize: 14,
    scrollback: 5000,
    screenReaderMode: false,
    theme: { background: '#101418', foreground: '#e6e6e6', cursor: '#f0c674', selectionBackground: '#3a5a80' },
  });
  const fitAddon = new FitAddon();
  term.loadAddon(fitAddon);
  term.open(container);
  const unmirror = mirrorInlineStyles(container);
  term.textarea?.setAttribute('aria-label', opts.ariaLabel);

  let last = '';
  const fit = (): void => {
    try {
      fitAddon.fit();
    } catch {
      return; // not laid out yet (hidden): the next resize fits it
    }
    const now = `${term.cols}x${term.rows}`;
    if (now !== last) {
      last = now;
      opts.onResize?.(term.cols, term.rows);
    }
  };
  const observer = new ResizeObserver(() => fit());
  observer.observe(container);
  fit();

  return {
    term,
    fit,
    dispose() {
      observer.disconnect();
      term.dispose();
      unmirror();
    },
  };
}
