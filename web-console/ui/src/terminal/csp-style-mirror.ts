/**
 * xterm.js's DOM renderer writes its theme colours and cell dimensions into <style> elements it
 * creates at run time. Under our CSP (`style-src 'self'`, no 'unsafe-inline') the browser refuses
 * to apply those, and the terminal renders with wrong row heights and no colours. A constructed
 * stylesheet is not an inline style (CSP does not govern the CSSOM), so the rules are copied into
 * one, adopted by the document, and kept in step whenever xterm rewrites its elements.
 */
export function mirrorInlineStyles(root: HTMLElement): () => void {
  const sheet = new CSSStyleSheet();
  document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];

  const sync = (): void => {
    const css = [...root.querySelectorAll('style')].map((s) => s.textContent ?? '').join('\n');
    try {
      sheet.replaceSync(css);
    } catch {
      // A rule this browser cannot parse: keep the last good set.
    }
  };

  const touchesStyle = (n: Node | null): boolean =>
    n !== null && (n.nodeName === 'STYLE' || n.parentNode?.nodeName === 'STYLE');

  // Rows re-render many times a second; only records that concern a <style> cost a re-parse.
  const observer = new MutationObserver((records) => {
    for (const r of records) {
      if (touchesStyle(r.target) || [...r.addedNodes].some(touchesStyle) || [...r.removedNodes].some((n) => n.nodeName === 'STYLE')) {
        sync();
        return;
      }
    }
  });
  observer.observe(root, { childList: true, subtree: true, characterData: true });
  sync();

  return () => {
    observer.disconnect();
    document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => s !== sheet);
  };
}
