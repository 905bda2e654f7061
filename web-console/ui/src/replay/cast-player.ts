import * as AsciinemaPlayer from 'asciinema-player';
import 'asciinema-player/dist/bundle/asciinema-player.css';

/** Loaded with import() by the replay page only: the player (with its WebAssembly terminal) is the biggest chunk. */
export type Player = AsciinemaPlayer.Player;

export function createPlayer(el: HTMLElement, cast: string, opts: { speed: number; startAt: number; autoPlay: boolean }): Player {
  return AsciinemaPlayer.create({ data: cast }, el, {
    speed: opts.speed,
    startAt: opts.startAt,
    autoPlay: opts.autoPlay,
    preload: true,
    controls: true,
    fit: 'width',
    terminalFontFamily: '"DejaVu Sans Mono", "Noto Sans Mono CJK SC", Menlo, Consolas, monospace',
  });
}
