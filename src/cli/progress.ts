/**
 * How `llmc oneshot` shows a run's graph events on stderr: a one-line
 * progress bar redrawn in place on a terminal, one JSON object per line
 * otherwise (for logs and programs that watch a run, e.g. to kill it after
 * a layer is persisted and resume it). Every JSON line carries a `message`
 * field with the text a person would read.
 *
 * @module
 */

import type { GraphEvent } from "../graph/events.ts";

/** `auto` picks `bar` on a terminal and `json` otherwise. */
export type ProgressMode = "auto" | "bar" | "json" | "none";

/** Receives a run's events; `close` ends the output (a newline after a bar). */
export interface ProgressRenderer {
  /** Shows one event. */
  readonly onEvent: (event: GraphEvent) => void;
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
  }
}

function bar(fraction: number, width = 24): string {
  const n = Math.max(0, Math.min(width, Math.round(fraction * width)));
  return `[${"#".repeat(n)}${".".repeat(width - n)}]`;
}

/**
 * A renderer for a mode.
 *
 * @param mode the mode (`auto`: bar on a terminal, else JSON lines)
 * @param isTerminal whether stderr is a terminal (default: ask Deno)
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
): ProgressRenderer {
  const chosen = mode === "auto" ? (isTerminal ? "bar" : "json") : mode;
  if (chosen === "none") return { onEvent: () => {}, close: () => {} };
  if (chosen === "json") {
    return {
      onEvent: (e) => console.error(JSON.stringify({ ...e, message: describeEvent(e) })),
      close: () => {},
    };
  }
  const encoder = new TextEncoder();
  const t0 = performance.now();
  let drawn = false;
  const write = (s: string) => Deno.stderr.writeSync(encoder.encode(s));
  return {
    onEvent(e) {
      if (e.type === "warning") {
        write(`${drawn ? "\r\x1b[K" : ""}${describeEvent(e)}\n`);
        drawn = false;
        return;
      }
      if (e.type === "module_metric") return;
      const layers = e.layers;
      const done = e.layer === null ? 0 : e.type === "layer_done" ? e.layer + 1 : e.layer;
      const within = e.type === "progress" && e.samples > 0
        ? e.samplesDone / e.samples / layers
        : 0;
      const seconds = ((performance.now() - t0) / 1000).toFixed(1);
      write(`\r\x1b[K${bar(done / layers + within)} ${describeEvent(e)}  ${seconds} s`);
      drawn = true;
    },
    close() {
      if (drawn) write("\n");
    },
  };
}
