/**
 * How `llmc oneshot` shows a run's graph events on stderr: a one-line
 * progress bar redrawn in place on a terminal, one JSON object per line
 * otherwise (for logs and programs that watch a run, e.g. to kill it after
 * a layer is persisted and resume it). Every JSON line carries a `message`
 * field with the text a person would read; progress and layer lines also
 * carry the position (`fraction`, `elapsed_s`, `eta_s`, `rate`,
 * `rate_unit`), and the run ends with one `result` or `error` line.
 *
 * @module
 */

import type { GraphEvent } from "../graph/events.ts";
import { formatDuration, type ProgressSnapshot, ProgressTracker } from "./progress_tracker.ts";

/** `auto` picks `bar` on a terminal and `json` otherwise. */
export type ProgressMode = "auto" | "bar" | "json" | "none";

/** What a finished run reports: a one-line summary and the fields behind it. */
export interface RunSummary {
  /** The line a person reads, e.g. `wrote out/x (datafree): 66 tensors, …`. */
  readonly message: string;
  /** The result's fields (JSON-serializable). */
  readonly fields: Readonly<Record<string, unknown>>;
}

/** Receives a run's events; `close` ends the output (a newline after a bar). */
export interface ProgressRenderer {
  /** Shows one event. */
  readonly onEvent: (event: GraphEvent) => void;
  /** Reports the finished run (a `result` line in JSON mode; nothing otherwise). */
  result(summary: RunSummary): void;
  /**
   * Reports a failed run.
   *
   * @returns true when the error was shown (JSON mode); otherwise the caller shows it
   */
  error(error: unknown): boolean;
  /** Ends the output. */
  close(): void;
}

/**
 * The human text of an event.
 *
 * @param e the event
 * @returns one line
 * @example
 * ```ts
 * import { describeEvent } from "./progress.ts";
 * describeEvent({ type: "layer_done", layer: 4, layers: 5, skipped: false, seconds: 1.5, bytesRead: 0 });
 * // "layer 5/5: 1.50 s"
 * ```
 */
export function describeEvent(e: GraphEvent): string {
  switch (e.type) {
    case "layer_done": {
      const what = e.layer === null
        ? "embeddings, norm, lm_head"
        : `layer ${e.layer + 1}/${e.layers}`;
      return e.skipped ? `${what}: already done (resumed)` : `${what}: ${e.seconds.toFixed(2)} s`;
    }
    case "progress": {
      const pass = e.passes > 1 ? `pass ${e.pass + 1}/${e.passes} ` : "";
      const layer = e.layer === null ? "lm_head" : `layer ${e.layer + 1}/${e.layers}`;
      const phase = e.phase === "calibrate" ? `calibrate round ${e.round + 1}` : e.phase;
      const samples = e.samples > 0 ? ` ${e.samplesDone}/${e.samples} samples` : "";
      return `${pass}${layer} ${phase}${samples}`;
    }
    case "module_metric":
      return `${e.module} (${e.modifier})` +
        (e.error === null ? "" : `: ${e.errorKind} ${e.error.toExponential(3)}`) +
        (e.expertTokens == null
          ? ""
          : `, tokens ${e.expertTokens.calibrated} calibrated / ${e.expertTokens.routed} routed`) +
        `, ${e.seconds.toFixed(3)} s, rss ${(e.rssBytes / 2 ** 20).toFixed(0)} MiB`;
    case "warning":
      return `warning: ${e.message}`;
    case "engine":
      return `engine: ${e.reason}`;
  }
}

function bar(fraction: number, width = 24): string {
  const n = Math.max(0, Math.min(width, Math.floor(fraction * width)));
  return `[${"#".repeat(n)}${".".repeat(width - n)}]`;
}

/**
 * The bar's status text after a snapshot: percent, elapsed, ETA, and the
 * current phase's rate and time.
 *
 * @param s the snapshot
 * @returns e.g. `42% 3.1 s, ETA 4.2 s, 120.5 samples/s (calibrate 0.4 s)`
 * @example
 * ```ts
 * import { describeSnapshot } from "./progress.ts";
 * describeSnapshot({
 *   fraction: 0.5, elapsed: 2, eta: 2, phase: null, phaseElapsed: 0, rate: 1.5, rateUnit: "layers/s",
 * }); // "50% 2.0 s, ETA 2.0 s, 1.50 layers/s"
 * ```
 */
export function describeSnapshot(s: ProgressSnapshot): string {
  const parts = [`${Math.floor(s.fraction * 100)}% ${formatDuration(s.elapsed)}`];
  parts.push(`ETA ${s.eta === null ? "?" : formatDuration(s.eta)}`);
  if (s.rate !== null) parts.push(`${s.rate.toFixed(s.rate < 10 ? 2 : 1)} ${s.rateUnit}`);
  const phase = s.phase === null ? "" : ` (${s.phase} ${formatDuration(s.phaseElapsed)})`;
  return parts.join(", ") + phase;
}

/** The JSON fields of a snapshot (snake_case, seconds rounded to ms). */
function snapshotFields(s: ProgressSnapshot): Record<string, unknown> {
  const ms = (x: number) => Math.round(x * 1000) / 1000;
  return {
    fraction: ms(s.fraction),
    elapsed_s: ms(s.elapsed),
    eta_s: s.eta === null ? null : ms(s.eta),
    rate: s.rate === null ? null : ms(s.rate),
    rate_unit: s.rateUnit,
  };
}

function errorFields(error: unknown): Record<string, unknown> {
  const e = error instanceof Error ? error : new Error(String(error));
  return { type: "error", error: e.name, message: e.message };
}

/**
 * A renderer for a mode.
 *
 * @param mode the mode (`auto`: bar on a terminal, else JSON lines)
 * @param isTerminal whether stderr is a terminal (default: ask Deno)
 * @param now the clock, in milliseconds (tests pass their own)
 * @returns the renderer
 * @example
 * ```ts
 * import { progressRenderer } from "./progress.ts";
 * const r = progressRenderer("none");
 * r.onEvent({ type: "warning", message: "x" });
 * r.close();
 * ```
 */
export function progressRenderer(
  mode: ProgressMode,
  isTerminal: boolean = Deno.stderr.isTerminal(),
  now: () => number = () => performance.now(),
): ProgressRenderer {
  const chosen = mode === "auto" ? (isTerminal ? "bar" : "json") : mode;
  if (chosen === "none") {
    return { onEvent: () => {}, result: () => {}, error: () => false, close: () => {} };
  }
  const tracker = new ProgressTracker(now());
  if (chosen === "json") {
    return {
      onEvent: (e) => {
        const position = e.type === "progress" || e.type === "layer_done"
          ? snapshotFields(tracker.update(e, now()))
          : {};
        console.error(JSON.stringify({ ...e, ...position, message: describeEvent(e) }));
      },
      result: (summary) => {
        const phases = Object.fromEntries(
          [...tracker.phaseSeconds(now())].map(([p, s]) => [p, Math.round(s * 1000) / 1000]),
        );
        console.error(
          JSON.stringify({
            type: "result",
            ...summary.fields,
            phase_seconds: phases,
            message: summary.message,
          }),
        );
      },
      error: (error) => {
        console.error(JSON.stringify(errorFields(error)));
        return true;
      },
      close: () => {},
    };
  }
  const encoder = new TextEncoder();
  let drawn = false;
  const write = (s: string) => Deno.stderr.writeSync(encoder.encode(s));
  const clear = () => {
    if (drawn) write("\r\x1b[K");
    drawn = false;
  };
  return {
    onEvent(e) {
      if (e.type === "warning" || e.type === "engine") {
        clear();
        write(`${describeEvent(e)}\n`);
        return;
      }
      if (e.type === "module_metric") return;
      const s = tracker.update(e, now());
      write(`\r\x1b[K${bar(s.fraction)} ${describeEvent(e)}  ${describeSnapshot(s)}`);
      drawn = true;
    },
    result() {
      const phases = [...tracker.phaseSeconds(now())];
      if (phases.length === 0) return;
      clear();
      write(`time per phase: ${phases.map(([p, s]) => `${p} ${formatDuration(s)}`).join(", ")}\n`);
    },
    error() {
      clear();
      return false;
    },
    close() {
      if (drawn) write("\n");
      drawn = false;
    },
  };
}
