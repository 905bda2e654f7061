import { useEffect, useId, useRef, useState } from 'preact/hooks';
import { api, query as qs } from '../../api/api-client.js';
import type { CommandLine } from '../../api/api-types.js';
import { PageHeader } from '../../components/page-header.js';
import { Empty, ErrorNote, Loading } from '../../components/status-views.js';
import { useResource } from '../../components/use-resource.js';
import { useI18n } from '../../i18n/i18n.js';
import { href } from '../../nav/hash-router.js';
import type { PageProps } from '../../nav/routes.js';
import type { Player } from '../../replay/cast-player.js';

const SPEEDS = [0.5, 1, 1.5, 2, 4, 8];

function clock(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const p = (n: number): string => String(n).padStart(2, '0');
  return h ? `${h}:${p(m)}:${p(s % 60)}` : `${m}:${p(s % 60)}`;
}

/** The start of the recording (epoch seconds) from the asciicast header, for placing commands on its timeline. */
function castStart(cast: string): number | null {
  try {
    const header = JSON.parse(cast.slice(0, cast.indexOf('\n'))) as { timestamp?: unknown };
    return typeof header.timestamp === 'number' ? header.timestamp : null;
  } catch {
    return null;
  }
}

/** Where a link to one moment (`seek=` an ISO time, from the command search) opens the recording: just before it. */
function startOffset(cast: string, seekTo: string | null): number {
  const start = castStart(cast);
  const at = seekTo === null ? Number.NaN : Date.parse(seekTo);
  if (start === null || Number.isNaN(at)) return 0;
  return Math.max(0, at / 1000 - start - 0.5);
}

export default function ReplayPage({ params, query }: PageProps) {
  const i18n = useI18n();
  const { t } = i18n;
  const id = params.id ?? '';
  const session = query.get('session');
  const ids = { speed: useId(), seek: useId() };
  const box = useRef<HTMLDivElement>(null);
  const player = useRef<Player | null>(null);
  const [cast, setCast] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [attempt, setAttempt] = useState(0);
  const [playerFailed, setPlayerFailed] = useState<'wasm' | 'other' | null>(null);
  const [playing, setPlaying] = useState(false);
  const [speed, setSpeed] = useState(1);
  const [time, setTime] = useState(0);
  const [duration, setDuration] = useState(0);
  const commands = useResource<{ commands: CommandLine[] }>(session ? `/api/commands${qs({ session, limit: 500 })}` : null);

  useEffect(() => {
    let live = true;
    setCast(null);
    setError(null);
    api.text(`/api/recordings/${encodeURIComponent(id)}/asciicast`).then((c) => live && setCast(c), (err: unknown) => live && setError(err));
    return () => {
      live = false;
    };
  }, [id, attempt]);

  // A new speed means a new player (the option is fixed at creation); it carries on from the same moment.
  useEffect(() => {
    if (cast === null || !box.current) return undefined;
    let disposed = false;
    const el = box.current;
    const resume = player.current ? { at: player.current.getCurrentTime(), playing } : { at: 0, playing: false };
    import('../../replay/cast-player.js').then(({ createPlayer }) => {
      if (disposed) return;
      player.current?.dispose();
      el.replaceChildren();
      try {
        const first = player.current === null;
        const p = createPlayer(el, cast, { speed, startAt: resume.at, autoPlay: resume.playing });
        player.current = p;
        const opening = first ? startOffset(cast, query.get('seek')) : 0;
        if (opening > 0) {
          void p.seek(opening);
          setTime(opening);
        }
        p.addEventListener('play', () => setPlaying(true));
        p.addEventListener('playing', () => setPlaying(true));
        p.addEventListener('pause', () => setPlaying(false));
        p.addEventListener('ended', () => setPlaying(false));
        setPlayerFailed(null);
      } catch {
        setPlayerFailed('other');
      }
    }, () => !disposed && setPlayerFailed('other'));
    // The player compiles its terminal emulator (WebAssembly) after creation, and does not catch a refusal.
    const onRejection = (e: PromiseRejectionEvent): void => {
      const reason: unknown = e.reason;
      if (reason instanceof WebAssembly.CompileError || (reason instanceof Error && /WebAssembly/.test(reason.message))) {
        e.preventDefault();
        setPlayerFailed('wasm');
      }
    };
    window.addEventListener('unhandledrejection', onRejection);
    return () => {
      disposed = true;
      window.removeEventListener('unhandledrejection', onRejection);
    };
  }, [cast, speed]);

  function downloadCast(): void {
    if (cast === null) return;
    const url = URL.createObjectURL(new Blob([cast], { type: 'application/x-asciicast' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = `${id}.cast`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  useEffect(() => () => {
    player.current?.dispose();
    player.current = null;
  }, []);

  // The position for the seek bar: the player has no time event, so it is read a few times a second.
  useEffect(() => {
    const timer = setInterval(() => {
      const p = player.current;
      if (!p) return;
      setTime(p.getCurrentTime());
      setDuration(p.getDuration() ?? 0);
    }, 250);
    return () => clearInterval(timer);
  }, []);

  const toggle = (): void => {
    const p = player.current;
    if (!p) return;
    void (playing ? p.pause() : p.play());
  };
  const seek = (seconds: number): void => {
    const p = player.current;
    if (!p) return;
    void p.seek(Math.max(0, seconds));
    setTime(seconds);
  };

  const start = cast ? castStart(cast) : null;
  const device = query.get('device');
  const user = query.get('user');

  return (
    <section class="page" data-page="replay">
      <PageHeader title={user && device ? t('replay.titleOf', { user, device }) : t('nav.replay')}
        intro={<>{t('replay.intro')} <code>{id}</code>{query.get('at') ? ` · ${i18n.time(query.get('at'))}` : ''}</>}>
        <a class="btn btn-small" href={href('/recordings')}>{t('replay.back')}</a>
        {cast !== null && <button type="button" class="btn btn-small" onClick={downloadCast}>{t('replay.download')}</button>}
      </PageHeader>
      {error !== null ? <ErrorNote error={error} onRetry={() => setAttempt((n) => n + 1)} /> : cast === null ? <Loading label={t('replay.loading')} /> : (
        <>
          <div class="replay-controls" role="group" aria-label={t('replay.controls')}>
            <button type="button" class="btn btn-primary" onClick={toggle} aria-pressed={playing}>{playing ? t('replay.pause') : t('replay.play')}</button>
            <label for={ids.seek} class="sr-only">{t('replay.position')}</label>
            <input id={ids.seek} class="seek" type="range" min={0} max={Math.max(duration, 0.1)} step={0.1} value={time}
              aria-valuetext={`${clock(time)} / ${clock(duration)}`} onInput={(e) => seek(Number(e.currentTarget.value))} />
            <span class="replay-time" aria-hidden="true">{clock(time)} / {clock(duration)}</span>
            <label for={ids.speed}>{t('replay.speed')}</label>
            <select id={ids.speed} value={String(speed)} onChange={(e) => setSpeed(Number(e.currentTarget.value))}>
              {SPEEDS.map((s) => <option key={s} value={String(s)}>{`${s}×`}</option>)}
            </select>
          </div>
          {playerFailed && (
            <div class="note note-error" role="alert">
              <p class="note-title">{playerFailed === 'wasm' ? t('replay.wasmBlocked') : t('replay.playerFailed')}</p>
              <p>{t('replay.downloadInstead')}</p>
            </div>
          )}
          <div class="player-box" ref={box} />
        </>
      )}
      {session && (
        <section class="commands-panel" aria-labelledby="replay-commands">
          <h2 id="replay-commands">{t('replay.commands')}</h2>
          {commands.loading ? <Loading /> : commands.error ? <ErrorNote error={commands.error} onRetry={commands.reload} /> : (commands.data?.commands.length ?? 0) === 0 ? (
            <Empty><p>{t('replay.noCommands')}</p></Empty>
          ) : (
            <ol class="command-list">
              {[...(commands.data?.commands ?? [])].sort((a, b) => Date.parse(a.at) - Date.parse(b.at)).map((c) => {
                const offset = start !== null ? (Date.parse(c.at) / 1000) - start : null;
                return (
                  <li key={c.id}>
                    <button type="button" class="btn-link" disabled={offset === null} onClick={() => offset !== null && seek(Math.max(0, offset - 0.5))}>
                      <span class="muted">{offset !== null ? clock(offset) : i18n.time(c.at)}</span> <code>{c.line}</code>
                    </button>
                    <span class={`badge badge-${c.decision === 'deny' ? 'bad' : c.decision === 'review' ? 'warn' : 'ok'}`}>{i18n.name('decision', c.decision)}</span>
                  </li>
                );
              })}
            </ol>
          )}
        </section>
      )}
    </section>
  );
}
