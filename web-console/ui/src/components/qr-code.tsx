import { useEffect, useState } from 'preact/hooks';
import { useI18n } from '../i18n/i18n.js';

interface Modules {
  size: number;
  path: string;
}

/** The dark modules as one SVG path: no inline styles, no data URL, nothing CSP has to allow. */
async function modulesOf(text: string): Promise<Modules> {
  const { default: qrcode } = await import('qrcode-generator');
  const qr = qrcode(0, 'M');
  qr.addData(text);
  qr.make();
  const n = qr.getModuleCount();
  let path = '';
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) if (qr.isDark(r, c)) path += `M${c} ${r}h1v1h-1z`;
  return { size: n, path };
}

export function QrCode({ text, label }: { text: string; label: string }) {
  const { t } = useI18n();
  const [modules, setModules] = useState<Modules | null>(null);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    let live = true;
    modulesOf(text).then((m) => live && setModules(m), () => live && setFailed(true));
    return () => {
      live = false;
    };
  }, [text]);
  if (failed) return <p class="hint">{t('enrol.qrFailed')}</p>;
  if (!modules) return <div class="qr qr-loading" role="status">{t('common.loading')}</div>;
  const quiet = 4;
  const box = modules.size + quiet * 2;
  return (
    <svg class="qr" viewBox={`${-quiet} ${-quiet} ${box} ${box}`} role="img" aria-label={label} shape-rendering="crispEdges">
      <rect x={-quiet} y={-quiet} width={box} height={box} fill="#ffffff" />
      <path d={modules.path} fill="#000000" />
    </svg>
  );
}
