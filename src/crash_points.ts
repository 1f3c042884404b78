/**
 * Named points where tests make a run die or stop, to prove that every
 * moment of a run is safe to crash in (including between the two renames
 * that replace an existing output, which no outside signal can hit
 * reliably). Inert unless an environment variable names the point:
 *
 * - `LLMC_CRASH_AT=<point>[:<n>]`: the process kills itself with SIGKILL at
 *   the n-th time (default 1st) it reaches the point: a crash, with no
 *   cleanup of any kind;
 * - `LLMC_PAUSE_AT=<point>[:<n>]`: the process writes
 *   `{"type":"paused","at":"<point>","pid":<pid>}` to stderr and waits for
 *   SIGUSR1, so a test can act (start a second run, send a signal) at a
 *   moment that is certain to lie at that point.
 *
 * @module
 */

import { readEnvQuietly } from "./_env.ts";

interface Trigger {
  point: string;
  n: number;
}

function trigger(name: string): Trigger | null {
  const v = readEnvQuietly(name);
  if (!v) return null;
  const m = /^([a-z0-9-]+)(?::(\d+))?$/.exec(v);
  return m ? { point: m[1], n: Number(m[2] ?? 1) } : null;
}

const CRASH = trigger("LLMC_CRASH_AT");
const PAUSE = trigger("LLMC_PAUSE_AT");
const hits = new Map<string, number>();

/**
 * Marks a point a run passes; crashes or pauses there when a test asks to.
 *
 * @param point the point's name (lowercase, digits, `-`)
 * @returns resolves at once, unless the run pauses here (then on SIGUSR1)
 * @example
 * ```ts
 * import { crashPoint } from "./crash_points.ts";
 * await crashPoint("commit-old-moved"); // a no-op unless LLMC_CRASH_AT / LLMC_PAUSE_AT name it
 * ```
 */
export async function crashPoint(point: string): Promise<void> {
  if (CRASH === null && PAUSE === null) return;
  const n = (hits.get(point) ?? 0) + 1;
  hits.set(point, n);
  if (CRASH?.point === point && CRASH.n === n) Deno.kill(Deno.pid, "SIGKILL");
  if (PAUSE?.point === point && PAUSE.n === n) {
    const { promise, resolve } = Promise.withResolvers<void>();
    Deno.addSignalListener("SIGUSR1", resolve);
    const line = `{"type":"paused","at":"${point}","pid":${Deno.pid}}\n`;
    await Deno.stderr.write(new TextEncoder().encode(line));
    await promise;
    Deno.removeSignalListener("SIGUSR1", resolve);
  }
}
